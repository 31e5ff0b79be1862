/*
 * errors: what each library error code means, and which code an error
 * reply of the agent is.
 *
 * The agent's error replies are {seq, error: TEXT} (spec §2): the protocol
 * has no error kind, and the reference server's texts are the ones our
 * agent sends.  So the kind is taken from the text here, in this one
 * table, and nowhere else: a caller tests rc == DISTKV_ECONFLICT and never
 * compares text.  docs/protocol.md ("Error kinds") lists the same table;
 * an agent text that changes must change both (tests/test_client.c checks
 * every kind against a real agent).  A text that matches nothing is
 * DISTKV_ESERVER, as every refusal was before the kinds existed.
 */
#include <string.h>

#include "distkv.h"
#include "client_internal.h"

/* How a pattern is matched against an error text. */
enum match { AT_START, ANYWHERE };

static const struct errkind {
	const char	*text;
	enum match	 how;
	int		 rc;
} errkinds[] = {
	/* preconditions of set_value / delete_value (spec §2.5.2) */
	{ "This entry already exists", AT_START, DISTKV_ECONFLICT },
	{ "This entry is new", AT_START, DISTKV_ECONFLICT },
	{ "Chain is ", AT_START, DISTKV_ECONFLICT },
	{ "Data is ", AT_START, DISTKV_ECONFLICT },

	/* ACLs, logins, the agent's own files */
	{ "Access denied", AT_START, DISTKV_EDENIED },
	{ "NoAuthError", AT_START, DISTKV_EDENIED },
	{ "AuthFailedError", AT_START, DISTKV_EDENIED },
	{ "Wrong auth type", AT_START, DISTKV_EDENIED },
	{ ": not given to a login bound to", ANYWHERE, DISTKV_EDENIED },
	{ "Refusing to write ", AT_START, DISTKV_EDENIED },

	/* a name that names nothing */
	{ "No such ", AT_START, DISTKV_ENOTFOUND },
	{ "Unknown node: ", AT_START, DISTKV_ENOTFOUND },
	{ "This type does not exist", AT_START, DISTKV_ENOTFOUND },

	{ "Not ready", AT_START, DISTKV_ENOTREADY },

	/* limits */
	{ "Request too large", AT_START, DISTKV_ETOOLARGE },
	{ "Path too long", AT_START, DISTKV_ETOOLARGE },
	{ "Path too deep", AT_START, DISTKV_ETOOLARGE },
	{ "File name too long", AT_START, DISTKV_ETOOLARGE },
	{ "Serf event not sent: too large", AT_START, DISTKV_ETOOLARGE },
	{ "Too many messages in one stream", AT_START, DISTKV_ETOOLARGE },

	{ "No input for ", AT_START, DISTKV_ETIMEDOUT },

	/* the request itself is wrong */
	{ "Missing ", AT_START, DISTKV_EBADREQ },
	{ "Unknown action", AT_START, DISTKV_EBADREQ },
	{ "Bad ", AT_START, DISTKV_EBADREQ },
	{ "Null path element", AT_START, DISTKV_EBADREQ },
	{ "Malformed msgpack", AT_START, DISTKV_EBADREQ },
	{ " must be ", ANYWHERE, DISTKV_EBADREQ },
	{ "File names ", AT_START, DISTKV_EBADREQ },
	{ "A deleted entry can't have a value", AT_START, DISTKV_EBADREQ },
	{ "Types may not start", AT_START, DISTKV_EBADREQ },
	{ " needs ", ANYWHERE, DISTKV_EBADREQ },
	{ "This auth method is not supported", AT_START, DISTKV_EBADREQ },
	{ "You didn't configure this method", AT_START, DISTKV_EBADREQ },
	{ "Channel closed? Sequence error", AT_START, DISTKV_EBADREQ },
};

/* Is the n bytes at s the decimal text of a tick (get_value by event)? */
static bool
all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

int
client_error_code(const char *text, size_t len)
{
	if (text == NULL)
		return DISTKV_ESERVER;
	/* spec §2.7: an unknown event's error is just its tick (KeyError) */
	if (all_digits(text, len))
		return DISTKV_ENOTFOUND;
	for (size_t i = 0; i < sizeof(errkinds) / sizeof(errkinds[0]); i++) {
		const struct errkind *k = &errkinds[i];
		size_t n = strlen(k->text);

		if (k->how == AT_START) {
			if (len >= n && memcmp(text, k->text, n) == 0)
				return k->rc;
		} else if (memmem(text, len, k->text, n) != NULL)
			return k->rc;
	}
	return DISTKV_ESERVER;
}

const char *
distkv_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "success";
	case DISTKV_ENOTFOUND:
		return "no value at this path";
	case DISTKV_EPROTO:
		return "protocol error: malformed or unexpected data from "
		    "the agent";
	case DISTKV_EDISCONNECTED:
		return "connection to the agent lost; reconnect";
	case DISTKV_ESERVER:
		return "the agent reported an error (see distkv_errmsg)";
	case DISTKV_EINVAL:
		return "invalid argument";
	case DISTKV_ETOOSMALL:
		return "buffer too small";
	case DISTKV_ETYPE:
		return "the value has another type";
	case DISTKV_ECANCELLED:
		return "request cancelled";
	case DISTKV_ECONNECT:
		return "cannot connect to the agent socket";
	case DISTKV_ETIMEDOUT:
		return "timed out waiting for the agent";
	case DISTKV_EBUSY:
		return "the value kept changing while it was read; try again";
	case DISTKV_ECORRUPT:
		return "the shared-memory region is not a valid DistKV region";
	case DISTKV_ESTALE:
		return "the agent behind the shared-memory region is not "
		    "running (its data may be stale)";
	case DISTKV_ETLS:
		return "TLS connection refused (certificate, name or "
		    "handshake; see distkv_connect_errmsg)";
	case DISTKV_ECONFLICT:
		return "precondition failed: the entry is not as expected "
		    "(it exists, is new, or has another chain or value)";
	case DISTKV_EDENIED:
		return "not allowed: refused by an ACL or the login";
	case DISTKV_EBADREQ:
		return "bad request: the agent cannot use it as sent";
	case DISTKV_ENOTREADY:
		return "the agent is not ready: it has not got its data yet";
	case DISTKV_ETOOLARGE:
		return "too large for the agent's limits";
	}
	if (rc < 0 && rc > -1000)
		return strerror(-rc);
	return "unknown error";
}
