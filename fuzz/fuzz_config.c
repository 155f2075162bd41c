/* The config parser: libconfuse plus our comment blanking and validation. A config that
 * parses must be internally consistent. */
#include <stdint.h>

#include "fuzz.h"
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mailauth_config *cfg = NULL;

    if (config_parse_buffer((const char *)data, size, "fuzz.conf", NULL, &cfg) != CONFIG_OK)
        return 0;
    if (cfg->n_servers == 0 || cfg->timeout_ms <= 0 || cfg->connect_timeout_ms <= 0)
        abort();
    for (size_t i = 0; i < cfg->n_servers; i++) {
        const struct config_server *s = &cfg->servers[i];
        if (s->n_endpoints == 0 || s->label == NULL)
            abort();
        for (size_t e = 0; e < s->n_endpoints; e++) {
            if (s->endpoints[e].port == 0 || s->endpoints[e].port > 65535 ||
                s->endpoints[e].host == NULL || s->endpoints[e].host[0] == '\0')
                abort();
        }
    }
    config_free(cfg);
    return 0;
}
