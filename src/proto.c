/* What every protocol dialogue shares: result names and the gate to success. */
#include "proto.h"

const char *proto_result_name(enum proto_result r)
{
    switch (r) {
    case PROTO_OK:
        return "accepted";
    case PROTO_EAUTHFAIL:
        return "refused";
    case PROTO_EIO:
        return "unreachable";
    case PROTO_EPROTO:
        return "protocol error";
    case PROTO_ETLS:
        return "TLS failure";
    case PROTO_EINSECURE:
        return "insecure";
    case PROTO_ETEMP:
        return "temporarily unavailable";
    }
    return "?";
}

enum proto_result proto_accept(struct login_outcome *o, const char *what)
{
    if (o->creds == CREDS_ALL) {
        /* The reason describes the outcome: whatever an earlier step left there (an APOP
         * refusal before USER/PASS) is no longer true. */
        errbuf_clear(&o->reason);
        return PROTO_OK;
    }
    errbuf_set(&o->reason, "server said OK to %s before the password was sent (%s); not a verdict",
               what, o->creds == CREDS_NONE ? "nothing of it sent" : "only partly sent");
    return PROTO_EPROTO;
}
