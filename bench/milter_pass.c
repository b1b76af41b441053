/*
 * milter_pass - a milter that lets every message through (issue 18).
 *
 *	milter_pass SOCKET	e.g. unix:/path/milter.sock or inet:10031@127.0.0.1
 *
 * The bench's "chamois-milter" server (bench/bench.py) runs chamoisd with
 * `milter` naming this filter, so the figures beside plain chamois are the
 * cost of the milter protocol itself (doc/filters.md): every step is asked
 * for (connect, helo, envelope, each header field, end of header, body,
 * end of message), each answered "continue", the message accepted at the
 * end, nothing changed. It declares SMFIF_ADDHDRS and SMFIF_CHGHDRS, as
 * rspamd and OpenDKIM do, so chamoisd takes the path of a milter that may
 * edit the header section. Built with Sendmail's libmilter (the Debian
 * package libmilter-dev, unpacked into bench/.peers/ by bench.py prepare),
 * the library real filters use; one thread per connection, as libmilter
 * does.
 */
#include <libmilter/mfapi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sfsistat pass_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
	(void)ctx; (void)host; (void)addr;
	return SMFIS_CONTINUE;
}

static sfsistat pass_helo(SMFICTX *ctx, char *name)
{
	(void)ctx; (void)name;
	return SMFIS_CONTINUE;
}

static sfsistat pass_envelope(SMFICTX *ctx, char **argv)
{
	(void)ctx; (void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat pass_header(SMFICTX *ctx, char *name, char *value)
{
	(void)ctx; (void)name; (void)value;
	return SMFIS_CONTINUE;
}

static sfsistat pass_eoh(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat pass_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	(void)ctx; (void)chunk; (void)len;
	return SMFIS_CONTINUE;
}

static sfsistat pass_eom(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_ACCEPT;
}

static sfsistat pass_none(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

int main(int argc, char **argv)
{
	struct smfiDesc desc = {
		.xxfi_name = "milter_pass",
		.xxfi_version = SMFI_VERSION,
		.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
		.xxfi_connect = pass_connect,
		.xxfi_helo = pass_helo,
		.xxfi_envfrom = pass_envelope,
		.xxfi_envrcpt = pass_envelope,
		.xxfi_header = pass_header,
		.xxfi_eoh = pass_eoh,
		.xxfi_body = pass_body,
		.xxfi_eom = pass_eom,
		.xxfi_abort = pass_none,
		.xxfi_close = pass_none,
	};

	if (argc != 2) {
		fprintf(stderr, "usage: milter_pass unix:PATH|inet:PORT@HOST\n");
		return 2;
	}
	if (strncmp(argv[1], "unix:", 5) == 0)
		unlink(argv[1] + 5);
	if (smfi_setconn(argv[1]) != MI_SUCCESS || smfi_setbacklog(128) != MI_SUCCESS ||
	    smfi_register(desc) != MI_SUCCESS) {
		fprintf(stderr, "milter_pass: cannot set up %s\n", argv[1]);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
