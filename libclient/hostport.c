/* hostport: numeric HOST:PORT to an addrinfo (hostport.h). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "hostport.h"

/* glibc takes "99999" for port 34463: only 0..65535, digits only */
static bool
port_ok(const char *s)
{
	unsigned long v = 0;
	size_t n;

	for (n = 0; s[n] >= '0' && s[n] <= '9'; n++)
		if ((v = v * 10 + (unsigned long)(s[n] - '0')) > 65535)
			return false;
	return n > 0 && s[n] == '\0';
}

int
hostport_resolve(const char *hostport, bool passive, struct addrinfo **out)
{
	struct addrinfo hints, *ai = NULL;
	const char *colon = strrchr(hostport, ':');
	const char *host = hostport;
	char buf[256];
	size_t hl;

	*out = NULL;
	if (colon == NULL)
		return -EINVAL;
	hl = (size_t)(colon - hostport);
	/* an IPv6 address is bracketed, so its own colons are not the last */
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		host++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(buf) || !port_ok(colon + 1))
		return -EINVAL;
	memcpy(buf, host, hl);
	buf[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV |
	    (passive ? AI_PASSIVE : 0);
	if (getaddrinfo(buf, colon + 1, &hints, &ai) != 0 || ai == NULL)
		return -EINVAL;
	*out = ai;
	return 0;
}

int
hostport_bind_addr(const char *hostport, struct sockaddr_storage *ss,
    bool *v6)
{
	struct addrinfo *ai;

	if (hostport_resolve(hostport, true, &ai) != 0)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*v6 = ai->ai_family == AF_INET6;
	freeaddrinfo(ai);
	return 0;
}
