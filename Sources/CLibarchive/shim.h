// libarchive: tar and its compressions (gzip, zstd), read and written, for image layers.
// Installed by `apt-get install libarchive-dev`.
#include <archive.h>
#include <archive_entry.h>
