/* The cache record parser (cache.c): whatever a damaged or hostile file holds, parsing never
 * crashes, and a record that parses formats back to exactly the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cache_record rec;
    struct errbuf err;
    char out[CACHE_MAX_RECORD + 1];
    int n;

    if (size > CACHE_MAX_RECORD)
        return 0;
    if (cache_record_parse((const char *)data, size, &rec, &err) != 0)
        return 0;
    if (strncmp(rec.hash, "$y$", 3) != 0 || rec.user[0] == '\0' || strlen(rec.config_id) != 64)
        abort();
    n = cache_record_format(&rec, out, sizeof(out));
    if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0)
        abort();
    return 0;
}
