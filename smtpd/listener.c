/*
 * listener.c - listening sockets and per-address connection counts.
 *
 * Sockets are bound before privileges are dropped and handed to libevent
 * afterwards.  Connections are counted per client address, IPv6 per /64
 * (doc/protocol.md, "Limits"), so one host cannot take every slot.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "../common/hmap.h"
#include "../common/metrics.h"
#include "../common/util.h"
#include "session.h"

static int *listen_fds;
static enum listen_role *listen_roles;
static size_t nlisten_fds;

int
smtpd_listeners_bind(const struct config *c, char *err, size_t errsize)
{
	listen_fds = xcalloc(c->nlistens, sizeof(int));
	listen_roles = xcalloc(c->nlistens, sizeof(*listen_roles));
	for (size_t i = 0; i < c->nlistens; i++) {
		const struct listen_addr *la = &c->listens[i];
		int fd, one = 1;

		fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd == -1) {
			snprintf(err, errsize, "%s:%d: listen %s: socket: %s", c->path,
			    la->line, la->text, strerror(errno));
			return -1;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (la->ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, (const struct sockaddr *)&la->ss, la->sslen) == -1) {
			snprintf(err, errsize, "%s:%d: listen %s: %s", c->path,
			    la->line, la->text, strerror(errno));
			close(fd);
			return -1;
		}
		listen_fds[nlisten_fds] = fd;
		listen_roles[nlisten_fds++] = la->role;
	}
	return 0;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	enum listen_role role = (enum listen_role)(intptr_t)arg;

	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	tcp_nodelay(fd);
	metrics_connection(role);
	smtpd_session_new(fd, sa, (socklen_t)salen, role);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	/* EMFILE and friends: say so; libevent retries on the next event */
	log_warn("smtp accept");
}

void
smtpd_listeners_start(void)
{
	smtpd.listeners = xcalloc(nlisten_fds, sizeof(*smtpd.listeners));
	for (size_t i = 0; i < nlisten_fds; i++) {
		struct evconnlistener *l;

		/*
		 * bound as root long ago; listening only now, when the queue and
		 * the local sockets are ready, so "the port answers" means ready
		 */
		if (listen(listen_fds[i], 511) == -1)
			fatal("listen");
		l = evconnlistener_new(smtpd.base, accept_cb,
		    (void *)(intptr_t)listen_roles[i], LEV_OPT_CLOSE_ON_FREE, 0,
		    listen_fds[i]);
		if (l == NULL)
			fatalx("evconnlistener_new");
		evconnlistener_set_error_cb(l, accept_error_cb);
		smtpd.listeners[smtpd.nlisteners++] = l;
	}
	free(listen_fds);
	free(listen_roles);
	listen_fds = NULL;
	listen_roles = NULL;
}

void
smtpd_listeners_stop(void)
{
	for (size_t i = 0; i < smtpd.nlisteners; i++)
		evconnlistener_free(smtpd.listeners[i]);
	free(smtpd.listeners);
	smtpd.listeners = NULL;
	smtpd.nlisteners = 0;
}

/* peer_key - "1.2.3.4", or the /64 of an IPv6 address */
static void
peer_key(const struct sockaddr *sa, char *key, size_t size)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		const uint8_t *b = s6->sin6_addr.s6_addr;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			inet_ntop(AF_INET, b + 12, key, (socklen_t)size);
			return;
		}
		snprintf(key, size, "%02x%02x:%02x%02x:%02x%02x:%02x%02x::/64",
		    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
	} else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    key, (socklen_t)size);
}

/* smtpd_addr_admit - count a new connection; false if over the limit */
bool
smtpd_addr_admit(const struct sockaddr *sa, char *key, size_t size)
{
	peer_key(sa, key, size);
	return hmap_count_add(smtpd.per_addr, key,
	    smtpd.cfg->max_connections_per_address);
}

void
smtpd_addr_release(const char *key)
{
	hmap_count_release(smtpd.per_addr, key);
}
