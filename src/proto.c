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

const char *proto_success_refused(const struct login_outcome *o)
{
    if (o->creds == CREDS_NONE)
        return "before the password was sent (nothing of it sent); not a verdict";
    if (o->creds != CREDS_ALL)
        return "before the password was sent (only partly sent); not a verdict";
    if (o->proof != PROOF_VERIFIED && o->proof != PROOF_NOT_REQUIRED)
        return "without proving it knows the password (no valid server signature); not a verdict";
    return NULL;
}

enum proto_result proto_accept(struct login_outcome *o, const char *what)
{
    const char *why = proto_success_refused(o);

    if (why == NULL) {
        /* The reason describes the outcome: whatever an earlier step left there (an APOP
         * refusal before USER/PASS) is no longer true. */
        errbuf_clear(&o->reason);
        return PROTO_OK;
    }
    errbuf_set(&o->reason, "server said OK to %s %s", what, why);
    return PROTO_EPROTO;
}
