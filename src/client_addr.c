#include "client_addr.h"

#include <arpa/inet.h>
#include <string.h>

bool client_addr_from_rhost(const char *rhost, char out[CLIENT_ADDR_MAX])
{
    unsigned char bin[16];

    out[0] = '\0';
    if (rhost == NULL || rhost[0] == '\0' || strnlen(rhost, CLIENT_ADDR_MAX) >= CLIENT_ADDR_MAX)
        return false;
    /* inet_pton takes only the strict numeric forms: no names, no zone, no brackets, no port.
     * Written back with inet_ntop, the text is canonical whatever the caller's spelling. */
    if (inet_pton(AF_INET, rhost, bin) == 1)
        return inet_ntop(AF_INET, bin, out, CLIENT_ADDR_MAX) != NULL;
    if (inet_pton(AF_INET6, rhost, bin) == 1)
        return inet_ntop(AF_INET6, bin, out, CLIENT_ADDR_MAX) != NULL;
    return false;
}
