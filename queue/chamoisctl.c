/*
 * chamoisctl.c - the administrator's view of the queue (SPEC 5), over the
 * daemon's admin socket.
 *
 * XXX The queue and its admin socket arrive with issue 5; until then this
 * program checks its arguments and reports that no admin socket answers.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/config.h"
#include "../config.h"

static void
problem(void *arg, const char *line)
{
	fprintf(stderr, "chamoisctl: %s\n", line);
}

int
main(int argc, char **argv)
{
	const char *conf = CHAMOIS_CONFIG_FILE;
	static const char *const cmds[] = { "queue", "show", "flush", "delete" };
	struct sockaddr_un sun;
	struct config *c;
	int ch, fd, known = 0;

	while ((ch = getopt(argc, argv, "f:")) != -1) {
		if (ch != 'f')
			goto usage;
		conf = optarg;
	}
	if (optind >= argc)
		goto usage;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[optind], cmds[i]) == 0)
			known = 1;
	if (!known)
		goto usage;
	if ((c = config_load(conf, problem, NULL)) == NULL)
		return 1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/admin.sock", c->queue_dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fprintf(stderr, "chamoisctl: no admin socket answers at %s "
		    "(is chamoisd running? this version has no queue yet)\n",
		    sun.sun_path);
	if (fd != -1)
		close(fd);
	config_free(c);
	return 1;
usage:
	fprintf(stderr, "usage: chamoisctl [-f FILE] queue | show ID | flush | "
	    "delete ID\n");
	return 2;
}
