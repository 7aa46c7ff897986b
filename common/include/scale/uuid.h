/* UUIDs: random v4 ids from the kernel's CSPRNG, and validation of the
 * canonical text form (8-4-4-4-12 hex). */
#ifndef SCALE_UUID_H
#define SCALE_UUID_H

#include <stdbool.h>

#define SC_UUID_STR_LEN 36

/* Writes a lower-case UUIDv4 and a NUL (37 bytes). Returns 0, or -1 when the
 * kernel's random source fails (nothing sensible can be written then). */
int sc_uuid_v4(char out[SC_UUID_STR_LEN + 1]);

/* True for the canonical 36-character form, either case. */
bool sc_uuid_valid(const char *s);

#endif
