/*
 * metrics.c - metrics_listen: the counters of common/metrics.c and the
 * queue's size and oldest message, as OpenMetrics text at GET /metrics
 * (doc/chamoisd.8, "METRICS"), served by libevent's evhttp on the loop.
 * Bounded: request headers METRICS_HEADERS_MAX octets, no body, a
 * connection idle METRICS_TIMEOUT seconds is closed; anything but
 * GET /metrics is 404 (another method: 501, over-long headers: 400,
 * evhttp's own answers).  The page is built in one go: it holds a
 * bounded number of series (the forward target table is capped).
 * libevent 2.1's evhttp has no cap on open connections: they are bounded
 * by the timeout and the open-file limit only (bind to loopback).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "../common/clock.h"
#include "../common/config.h"
#include "../common/metrics.h"
#include "../common/util.h"
#include "../queue/queue.h"
#include "metrics.h"

#define METRICS_HEADERS_MAX	8192
#define METRICS_TIMEOUT		10

static struct evhttp *http;
static struct evhttp_bound_socket *bound;

static void
count_msg(const struct queue_msg *msg, void *arg)
{
	struct metrics_queue *q = arg;

	q->messages++;
	for (size_t i = 0; i < msg->nrcpts; i++)
		if (msg->rcpts[i].state == RS_PENDING ||
		    msg->rcpts[i].state == RS_DEFERRED)
			q->recipients++;
	if (q->oldest == 0 || msg->created < q->oldest)
		q->oldest = msg->created;
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	struct metrics_queue q = { 0 };
	struct strbuf sb = { 0 };
	struct evbuffer *out;

	if (uri == NULL || strcmp(uri, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, NULL);
		return;
	}
	queue_foreach(count_msg, &q);
	metrics_render(&sb, &q, clock_now());
	if ((out = evbuffer_new()) == NULL) {
		free(sb.p);
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evbuffer_add(out, sb.p, sb.len);
	free(sb.p);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "application/openmetrics-text; version=1.0.0; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", out);
	evbuffer_free(out);
}

int
metrics_listen_init(struct event_base *base, const struct config *c,
    char *err, size_t errsize)
{
	int fd, on = 1;

	if (c->metrics_listen_len == 0)
		return 0;
	if ((fd = socket(c->metrics_listen.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    bind(fd, (const struct sockaddr *)&c->metrics_listen,
	    c->metrics_listen_len) == -1 || listen(fd, 16) == -1) {
		bsnprintf(err, errsize, "metrics_listen %s: %s",
		    c->metrics_listen_text, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if ((http = evhttp_new(base)) == NULL ||
	    (bound = evhttp_accept_socket_with_handle(http, fd)) == NULL) {
		bsnprintf(err, errsize, "metrics_listen %s: cannot set up HTTP",
		    c->metrics_listen_text);
		close(fd);
		return -1;
	}
	evhttp_set_max_headers_size(http, METRICS_HEADERS_MAX);
	evhttp_set_max_body_size(http, 0);
	evhttp_set_timeout(http, METRICS_TIMEOUT);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET);
	evhttp_set_gencb(http, request_cb, NULL);
	return 0;
}

void
metrics_listen_stop(void)
{
	if (http && bound) {
		evhttp_del_accept_socket(http, bound);
		bound = NULL;
	}
}

void
metrics_listen_shutdown(void)
{
	if (http)
		evhttp_free(http);
	http = NULL;
	bound = NULL;
	metrics_shutdown();
}
