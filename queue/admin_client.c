/*
 * admin_client.c - the client end of the admin socket (admin.h), for
 * chamoisctl and for chamois-sendmail's mailq listing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"

int
admin_connect(const char *queue_dir, char *path, size_t pathsize)
{
	struct sockaddr_un sun;
	int fd, dirfd = -1, e = 0;

	snprintf(path, pathsize, "%s/%s", queue_dir, ADMIN_SOCKET_NAME);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		/* too long for sun_path: through the directory's descriptor */
		if ((dirfd = open(queue_dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1)
			e = errno;
		else
			snprintf(sun.sun_path, sizeof(sun.sun_path),
			    "/proc/self/fd/%d/%s", dirfd, ADMIN_SOCKET_NAME);
	} else
		memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		e = errno;
	else if (sun.sun_path[0] != '\0' &&
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		if (dirfd != -1)
			close(dirfd);
		return fd;
	} else if (sun.sun_path[0] != '\0')
		e = errno;
	if (fd != -1)
		close(fd);
	if (dirfd != -1)
		close(dirfd);
	errno = e;
	return -1;
}
