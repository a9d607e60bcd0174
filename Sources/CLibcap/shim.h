// libcap: POSIX capabilities (cap_get_proc, cap_set_proc, cap_from_name, ...).
// Installed by `apt-get install libcap-dev`.
#include <sys/capability.h>
