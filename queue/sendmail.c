/*
 * sendmail.c - chamois-sendmail, the sendmail interface for local programs
 * (SPEC 6).  It hands the message to the running daemon's submit socket.
 *
 * XXX The queue and its submit socket arrive with the queue (issue 5);
 * until then the daemon never listens there, so this program checks its
 * arguments, finds no daemon and exits 75 (EX_TEMPFAIL) as SPEC 6 says.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/config.h"
#include "../config.h"

#define EX_USAGE	64
#define EX_TEMPFAIL	75

static void
problem(void *arg, const char *line)
{
	fprintf(stderr, "chamois-sendmail: %s\n", line);
}

int
main(int argc, char **argv)
{
	const char *conf = CHAMOIS_CONFIG_FILE;
	struct sockaddr_un sun;
	struct config *c;
	int fd, ch;

	/* the options cron and other programs pass are accepted (SPEC 6) */
	while ((ch = getopt(argc, argv, "C:tif:F:B:o:b:vN:R:V:")) != -1) {
		switch (ch) {
		case 'C': conf = optarg; break;
		case 't': case 'i': case 'f': case 'F': case 'B': case 'o':
		case 'b': case 'v': case 'N': case 'R': case 'V':
			break;
		default:
			fprintf(stderr, "usage: chamois-sendmail [-C FILE] [-t] [-i] "
			    "[-f SENDER] [RECIPIENT...]\n");
			return EX_USAGE;
		}
	}
	if ((c = config_load(conf, problem, NULL)) == NULL)
		return EX_TEMPFAIL;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/submit.sock", c->queue_dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "chamois-sendmail: chamoisd is not running (no "
		    "submit socket at %s); message not sent\n", sun.sun_path);
		config_free(c);
		return EX_TEMPFAIL;
	}
	close(fd);
	config_free(c);
	fprintf(stderr, "chamois-sendmail: this chamoisd does not take "
	    "submissions yet\n");
	return EX_TEMPFAIL;
}
