/*
 * fuzz_config - common/config.c (config_load) and, when the configuration
 * loads, common/tables.c (tables_load, then tables_resolve).
 *
 * Input: the configuration file; after a line "%%mailboxes" the mailboxes
 * table, after a line "%%aliases" the aliases table.  Each is written to a
 * memfd made once (LLVMFuzzerInitialize) and rewritten for every input,
 * and opened as /proc/self/fd/N; the mailboxes and aliases paths of a
 * loaded configuration are pointed at those memfds (an alias file only
 * where the configuration names one), so the tables come from the input
 * and nothing on the disk is read.  Problems go to a callback that only
 * checks their shape ("FILE:LINE: message" or "FILE: message", one line).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/limits.h"
#include "common/tables.h"
#include "common/util.h"
#include "fuzz.h"

static int fd_conf = -1, fd_mbox = -1, fd_alias = -1;
static char path_conf[64], path_mbox[64], path_alias[64];

static int
memfd(const char *name, char *path, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd == -1) {
		perror("memfd_create");
		abort();
	}
	snprintf(path, size, "/proc/self/fd/%d", fd);
	return fd;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fd_conf = memfd("chamois.conf", path_conf, sizeof(path_conf));
	fd_mbox = memfd("mailboxes", path_mbox, sizeof(path_mbox));
	fd_alias = memfd("aliases", path_alias, sizeof(path_alias));
	return 0;
}

static void
put(int fd, const uint8_t *p, size_t n)
{
	if (ftruncate(fd, 0) == -1 || pwrite(fd, p, n, 0) != (ssize_t)n) {
		perror("memfd write");
		abort();
	}
}

static void
problem(void *arg, const char *line)
{
	FUZZ_CHECK(line != NULL && strchr(line, '\n') == NULL);
	FUZZ_CHECK(strncmp(line, "/", 1) == 0);	/* starts with the path */
	(*(unsigned *)arg)++;
}

/* part - data up to the line "marker" (or all of it); *rest after it */
static size_t
part(const uint8_t *data, size_t size, const char *marker,
    const uint8_t **rest, size_t *restlen)
{
	size_t m = strlen(marker);

	for (size_t i = 0; i + m <= size; i++)
		if ((i == 0 || data[i - 1] == '\n') &&
		    memcmp(data + i, marker, m) == 0 &&
		    (i + m == size || data[i + m] == '\n')) {
			*rest = data + i + m + (i + m < size);
			*restlen = size - (size_t)(*rest - data);
			return i;
		}
	*rest = NULL;
	*restlen = 0;
	return size;
}

static void
resolve(const struct tables *t, const char *key)
{
	struct expansion exp;

	if (tables_resolve(t, key, &exp)) {
		FUZZ_CHECK(exp.nmailboxes > 0 || exp.external != NULL);
		for (size_t i = 0; i < exp.nmailboxes; i++)
			FUZZ_CHECK(exp.mailboxes[i] != NULL);
	} else
		FUZZ_CHECK(exp.nmailboxes == 0 && exp.external == NULL);
	expansion_free(&exp);
}

/* resolve_lines - the address of each line of a table (before ':') */
static void
resolve_lines(const struct tables *t, const uint8_t *p, size_t n)
{
	char *text = fuzz_str(p, n), *save, *line;
	int count = 0;

	for (line = strtok_r(text, "\n", &save); line && count < 8;
	    line = strtok_r(NULL, "\n", &save)) {
		struct mailaddr a;
		char key[PATH_MAX_OCTETS + 1];

		line[strcspn(line, ":#")] = '\0';
		if (addr_parse(str_trim(line), &a, ADDR_F_UTF8) == ADDR_OK &&
		    addr_key(&a, key, sizeof(key))) {
			resolve(t, key);
			count++;
		}
	}
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *mb = NULL, *al = NULL, *rest;
	size_t nconf, nmb = 0, nal = 0, restlen;
	struct config *c;
	struct tables *t;
	unsigned problems = 0;

	nconf = part(data, size, "%%mailboxes", &rest, &restlen);
	if (rest != NULL) {
		mb = rest;
		nmb = part(rest, restlen, "%%aliases", &al, &nal);
	} else
		nconf = part(data, size, "%%aliases", &al, &nal);
	put(fd_conf, data, nconf);
	put(fd_mbox, mb ? mb : (const uint8_t *)"", nmb);
	put(fd_alias, al ? al : (const uint8_t *)"", nal);

	c = config_load(path_conf, problem, &problems);
	if (c == NULL) {
		FUZZ_CHECK(problems > 0);
		return 0;
	}
	FUZZ_CHECK(problems == 0);
	FUZZ_CHECK(c->nlistens > 0 && c->mailboxes && c->maildir_root &&
	    c->queue_dir && c->hostname);
	for (size_t i = 0; i < c->nlistens; i++)
		FUZZ_CHECK(c->listens[i].sslen > 0 &&
		    c->listens[i].sslen <= sizeof(c->listens[i].ss));
	for (size_t i = 0; i < c->ndomains; i++)
		FUZZ_CHECK(config_is_local_domain(c, c->domains[i]));
	config_line(c, "listen");
	config_line(c, "no_such_key");

	/* the tables come from the input, never from the named files */
	free(c->mailboxes);
	c->mailboxes = xstrdup(path_mbox);
	if (c->aliases != NULL) {
		free(c->aliases);
		c->aliases = xstrdup(path_alias);
	}
	problems = 0;
	t = tables_load(c, problem, &problems);
	if (t == NULL)
		FUZZ_CHECK(problems > 0);
	else {
		char key[300];

		FUZZ_CHECK(problems == 0);
		FUZZ_CHECK(tables_mailbox_count(t) > 0 || c->postmaster);
		resolve(t, "postmaster");
		for (size_t i = 0; i < c->ndomains && i < 4; i++) {
			snprintf(key, sizeof(key), "postmaster@%s", c->domains[i]);
			resolve(t, key);
			snprintf(key, sizeof(key), "postmaster+tag@%s",
			    c->domains[i]);
			resolve(t, key);
		}
		if (mb != NULL)
			resolve_lines(t, mb, nmb);
		if (al != NULL)
			resolve_lines(t, al, nal);
		tables_free(t);
	}
	config_free(c);
	return 0;
}
