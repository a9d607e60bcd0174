// OpenSSL's libcrypto: SHA-256 (EVP_DigestInit_ex, EVP_DigestUpdate, EVP_DigestFinal_ex)
// for content addresses. Installed by `apt-get install libssl-dev`.
#include <openssl/evp.h>
