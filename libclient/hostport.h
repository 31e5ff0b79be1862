/*
 * hostport: the numeric "HOST:PORT" text every TCP address of the
 * project is given as (agent --listen and --metrics, distkv-etcd
 * --listen, libdistkv's tcp:// and tls:// URLs).
 */
#ifndef DISTKV_HOSTPORT_H
#define DISTKV_HOSTPORT_H

#include <stdbool.h>
#include <netdb.h>
#include <sys/socket.h>

/*
 * Resolve "127.0.0.1:27586" or "[::1]:27586" (no names: a config file
 * must not wait on DNS) for a stream socket, for bind() if passive.
 * Returns 0 and *out (freeaddrinfo it), or -EINVAL.
 */
int hostport_resolve(const char *hostport, bool passive,
    struct addrinfo **out);

/* The same for bind(), as a sockaddr (*v6: an IPv6 one); 0 or -EINVAL. */
int hostport_bind_addr(const char *hostport, struct sockaddr_storage *ss,
    bool *v6);

#endif
