/*
 * srs.c - the Sender Rewriting Scheme (SRS0 only) for forwarded mail.
 *
 * A forwarded message leaves with the envelope sender
 *
 *	SRS0=HHHHHH=TT=orig-domain=orig-local@our-domain
 *
 * TT is the day number (now / 86400) modulo 1024 in base32, two
 * characters; HHHHHH is the first six characters of the base32 (RFC 4648
 * alphabet, written in lower case) of HMAC-SHA256(secret,
 * lower(TT "=" orig-domain "=" orig-local)).  Everything is compared
 * case-insensitively, since servers on the way back may fold case; the
 * hash in constant time (CRYPTO_memcmp).  An address is good for
 * SRS_MAX_AGE_DAYS days (and one day ahead, for clocks that differ);
 * since TT wraps every 1024 days, an address 1024 days old looks fresh
 * again, which is the scheme's known trade (2.8 years).
 *
 * Local parts are handled in their meaning, not their spelling: a quoted
 * original ("john doe"@example.org) is unquoted before it is signed, and
 * the SRS local part is quoted (RFC 5321 4.1.2 Quoted-string) when it is
 * not a Dot-string, as in "SRS0=HHHHHH=TT=[192.0.2.1]=john doe"@our-domain.
 * srs_reverse() takes the local part in either spelling (the canonical
 * form of common/addr.c: unquoted when it is a Dot-string) and gives the
 * original back in that canonical form.
 *
 * Secrets: the srs_secret lines of chamois.conf, or else the file
 * queue_dir/srs.secret, made on first start (32 random bytes as hex, mode
 * 0600, durable before use) and refused when others may read it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../common/addr.h"
#include "../common/limits.h"
#include "../common/util.h"
#include "srs.h"

#define SRS_PREFIX	"SRS0="
#define SRS_HASH_LEN	6
#define SRS_TT_LEN	2
#define SRS_DAYS	1024		/* TT is the day number modulo this */
#define SRS_FUTURE_DAYS	1		/* clock skew we forgive */
#define SRS_SECRET_FILE	"srs.secret"
#define SRS_SECRET_BYTES 32
#define SRS_SECRET_MIN	16		/* as config.c asks of srs_secret */
#define SRS_SECRET_MAX	1024

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

/* b32_value - the value of a base32 character in either case, -1 if none */
static int
b32_value(char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

/* srs_day - today's number modulo SRS_DAYS */
static unsigned
srs_day(time_t now)
{
	if (now < 0)
		now = 0;
	return (unsigned)(((uint64_t)now / 86400) % SRS_DAYS);
}


/*
 * local_unquote - the meaning of the local part s[0..n): a Quoted-string
 * loses its quotes and backslashes, anything else is copied.  NULL when
 * the quoting is broken.  The result is allocated.
 */
static char *
local_unquote(const char *s, size_t n)
{
	char *out, *o;

	if (n == 0 || s[0] != '"')
		return xstrndup(s, n);
	if (n < 2 || s[n - 1] != '"')
		return NULL;
	o = out = xmalloc(n);
	for (size_t i = 1; i < n - 1; i++) {
		if (s[i] == '\\') {
			if (++i == n - 1) {
				free(out);
				return NULL;
			}
		} else if (s[i] == '"') {
			free(out);
			return NULL;
		}
		*o++ = s[i];
	}
	*o = '\0';
	return out;
}

/*
 * local_quote - s spelled as a local part: as is when it is a Dot-string,
 * else a Quoted-string with '"' and '\' escaped (the canonical form of
 * addr.c).  The result is allocated.
 */
static char *
local_quote(const char *s)
{
	size_t n = strlen(s);
	char *out, *o;

	if (addr_is_dot_string(s, strlen(s)))
		return xstrdup(s);
	o = out = xmalloc(2 * n + 3);
	*o++ = '"';
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			*o++ = '\\';
		*o++ = *s;
	}
	*o++ = '"';
	*o = '\0';
	return out;
}

/*
 * srs_hash - the first SRS_HASH_LEN base32 characters (lower case) of
 * HMAC-SHA256(secret, lower(tt "=" domain "=" local)).
 */
static void
srs_hash(const char *secret, const char *tt, const char *domain,
    const char *local, char out[SRS_HASH_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint32_t bits;
	char *msg;

	msg = xasprintf("%s=%s=%s", tt, domain, local);
	str_lower(msg);
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (const unsigned char *)msg, strlen(msg), md, &mdlen) == NULL ||
	    mdlen < 4)
		fatalx("srs: HMAC-SHA256 failed");
	free(msg);
	/* RFC 4648 6: the first 30 bits, most significant first */
	bits = (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 |
	    (uint32_t)md[2] << 8 | (uint32_t)md[3];
	for (int i = 0; i < SRS_HASH_LEN; i++)
		out[i] = b32[(bits >> (27 - 5 * i)) & 31];
	out[SRS_HASH_LEN] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
}

/*
 * srs_forward - rewrite sender into SRS0=HHHHHH=TT=domain=local@our_domain.
 * false when out is too small, when there are no secrets, or when sender
 * is no local@domain (its domain must not hold '=', which no domain or
 * address literal that addr.c accepts does) or its domain is an address
 * literal (doc/forwarding.md, SRS).
 */
bool
srs_forward(const struct srs *srs, const char *sender, const char *our_domain,
    time_t now, char *out, size_t size)
{
	const char *at, *domain;
	char hash[SRS_HASH_LEN + 1], tt[SRS_TT_LEN + 1];
	char *local, *body, *spelled;
	unsigned day;
	bool ok;

	if (srs->nsecrets == 0 || sender == NULL || our_domain == NULL ||
	    *our_domain == '\0' || (at = strrchr(sender, '@')) == NULL ||
	    at == sender)
		return false;
	domain = at + 1;
	/* an SRS address must never make us connect to a literal */
	if (*domain == '\0' || *domain == '[' || strchr(domain, '=') != NULL)
		return false;
	if ((local = local_unquote(sender, (size_t)(at - sender))) == NULL)
		return false;

	day = srs_day(now);
	tt[0] = b32[day >> 5];
	tt[1] = b32[day & 31];
	tt[2] = '\0';
	srs_hash(srs->secrets[0], tt, domain, local, hash);
	body = xasprintf(SRS_PREFIX "%s=%s=%s=%s", hash, tt, domain, local);
	/*
	 * The SRS local part is at least 16 octets longer than the original
	 * one and often passes the 64 octets of RFC 5321 4.5.3.1.1.  It is
	 * used all the same: the same section asks servers to accept longer
	 * local parts where they can, the common MTAs do, and SRS has no
	 * shorter form that keeps the original address (a database of
	 * short tokens would be the alternative).  The whole path must
	 * still fit the 256 octets of 4.5.3.1.3, '<' and '>' included, for
	 * our own addr.c to take the bounce back: longer is refused here.
	 */
	spelled = local_quote(body);
	ok = bsnprintf(out, size, "%s@%s", spelled, our_domain) &&
	    strlen(out) <= PATH_MAX_OCTETS - 2;
	free(spelled);
	free(body);
	free(local);
	return ok;
}

/*
 * srs_reverse - decode local_part (SRS0=HHHHHH=TT=domain=local, any case,
 * quoted or not) into the original "local@domain".  The original is never
 * longer than local_part as addr.c spells it, so orig of
 * strlen(local_part) + 1 octets always does; an orig too small to hold it
 * gives SRS_SYNTAX (srs.h has no status of its own for that).
 */
enum srs_status
srs_reverse(const struct srs *srs, const char *local_part, time_t now,
    char *orig, size_t size)
{
	char given[SRS_HASH_LEN + 1], want[SRS_HASH_LEN + 1];
	char tt[SRS_TT_LEN + 1];
	char *body, *p, *eq, *domain, *local, *spelled;
	enum srs_status st = SRS_SYNTAX;
	unsigned stamp, age;
	bool match = false;

	if (!str_has_prefix_ci(local_part, SRS_PREFIX) &&
	    !str_has_prefix_ci(local_part, "\"" SRS_PREFIX))
		return SRS_NOT_SRS;
	if ((body = local_unquote(local_part, strlen(local_part))) == NULL)
		return SRS_SYNTAX;
	if (!str_has_prefix_ci(body, SRS_PREFIX)) {
		/* "\SRS0=..." */
		free(body);
		return SRS_NOT_SRS;
	}
	p = body + strlen(SRS_PREFIX);

	/* HHHHHH= */
	if ((eq = strchr(p, '=')) == NULL || eq - p != SRS_HASH_LEN)
		goto done;
	for (int i = 0; i < SRS_HASH_LEN; i++) {
		if (b32_value(p[i]) == -1)
			goto done;
		given[i] = b32[b32_value(p[i])];
	}
	given[SRS_HASH_LEN] = '\0';
	p = eq + 1;

	/* TT= */
	if ((eq = strchr(p, '=')) == NULL || eq - p != SRS_TT_LEN ||
	    b32_value(p[0]) == -1 || b32_value(p[1]) == -1)
		goto done;
	stamp = (unsigned)(b32_value(p[0]) << 5 | b32_value(p[1]));
	memcpy(tt, p, SRS_TT_LEN);
	tt[SRS_TT_LEN] = '\0';
	p = eq + 1;

	/* domain=local: the local part is the rest and may hold '=' */
	if ((eq = strchr(p, '=')) == NULL || eq == p)
		goto done;
	*eq = '\0';
	domain = p;
	local = eq + 1;

	/* every secret verifies (rotation); none may stop early on a miss */
	for (size_t i = 0; i < srs->nsecrets; i++) {
		srs_hash(srs->secrets[i], tt, domain, local, want);
		if (CRYPTO_memcmp(want, given, SRS_HASH_LEN) == 0)
			match = true;
	}
	if (!match) {
		st = SRS_BAD_HASH;
		goto done;
	}
	/* minted before srs_forward refused literals: never connect to one */
	if (*domain == '[') {
		st = SRS_LITERAL;
		goto done;
	}

	/* the hash is good: only now does the age mean anything */
	age = (srs_day(now) + SRS_DAYS - stamp) % SRS_DAYS;
	if (age > SRS_MAX_AGE_DAYS && age < SRS_DAYS - SRS_FUTURE_DAYS) {
		st = SRS_STALE;
		goto done;
	}

	spelled = local_quote(local);
	st = bsnprintf(orig, size, "%s@%s", spelled, domain) ? SRS_OK :
	    SRS_SYNTAX;
	free(spelled);
done:
	free(body);
	return st;
}

/* secret_check - a secret may be used: long enough, one line */
static bool
secret_check(const char *s, const char *where, char *err, size_t errsize)
{
	if (strlen(s) < SRS_SECRET_MIN) {
		bsnprintf(err, errsize, "%s: an SRS secret needs at least %d "
		    "characters", where, SRS_SECRET_MIN);
		return false;
	}
	if (strpbrk(s, "\r\n") != NULL) {
		bsnprintf(err, errsize, "%s: an SRS secret is one line", where);
		return false;
	}
	return true;
}

/*
 * secret_read - the secret in path into *out (allocated): 1 on success,
 * 0 when the file does not exist, -1 on failure (err says why).  A file
 * that others may write, or read, is refused: with the secret anyone can
 * make SRS addresses that we forward.
 */
static int
secret_read(const char *path, char **out, char *err, size_t errsize)
{
	char buf[SRS_SECRET_MAX + 1];
	struct stat st;
	size_t len = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		if (errno == ENOENT)
			return 0;
		bsnprintf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		bsnprintf(err, errsize, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		bsnprintf(err, errsize, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_mode & (S_IWGRP | S_IRWXO)) {
		bsnprintf(err, errsize, "%s: mode %03o lets others read or "
		    "write the SRS secret (chmod 600)", path,
		    (unsigned)(st.st_mode & 0777));
		goto fail;
	}
	for (;;) {
		r = read(fd, buf + len, sizeof(buf) - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			bsnprintf(err, errsize, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len == sizeof(buf)) {
			bsnprintf(err, errsize, "%s: longer than %d octets",
			    path, SRS_SECRET_MAX);
			goto fail;
		}
	}
	close(fd);
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		bsnprintf(err, errsize, "%s: holds a NUL octet", path);
		goto wipe;
	}
	/* one line; a final newline and trailing blanks are not the secret */
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!secret_check(str_trim(buf), path, err, errsize))
		goto wipe;
	*out = xstrdup(str_trim(buf));
	OPENSSL_cleanse(buf, sizeof(buf));
	return 1;
fail:
	close(fd);
wipe:
	OPENSSL_cleanse(buf, sizeof(buf));
	return -1;
}

/*
 * secret_make - a new secret in path: written to a temporary file in the
 * same directory, synced, linked into place, the directory synced.  link()
 * rather than rename() so that a second chamoisd starting at the same
 * moment cannot replace a secret the first has begun to sign with; the
 * loser reads the winner's.  Returns as secret_read() does (never 0).
 */
static int
secret_make(const char *dir, const char *path, char **out, char *err,
    size_t errsize)
{
	char tmp[4096], hex[2 * SRS_SECRET_BYTES + 2];
	size_t off = 0, len;
	int fd, e, r;

	for (int i = 0; i < SRS_SECRET_BYTES / 8; i++) {
		uint64_t v = random_u64();

		for (int j = 0; j < 8; j++, v >>= 8)
			off += (size_t)snprintf(hex + off, sizeof(hex) - off,
			    "%02x", (unsigned)(v & 0xff));
	}
	hex[off++] = '\n';
	hex[off] = '\0';
	len = off;

	if (!bsnprintf(tmp, sizeof(tmp), "%s.XXXXXX", path)) {
		bsnprintf(err, errsize, "%s: path too long", path);
		goto wipe;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		bsnprintf(err, errsize, "%s: %s", path, strerror(errno));
		goto wipe;
	}
	if (fchmod(fd, 0600) == -1)
		goto fail;
	if (write_full(fd, hex, len) == -1)
		goto fail;
	if (fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (link(tmp, path) == -1) {
		if (errno == EEXIST) {
			/* another process was first: its secret it is */
			unlink(tmp);
			OPENSSL_cleanse(hex, sizeof(hex));
			r = secret_read(path, out, err, errsize);
			if (r == 0) {
				bsnprintf(err, errsize, "%s: vanished", path);
				r = -1;
			}
			return r;
		}
		/* a file system without hard links */
		if (rename(tmp, path) == -1)
			goto fail;
	} else
		unlink(tmp);
	if (fsync_dir(dir) == -1) {
		bsnprintf(err, errsize, "%s: %s", dir, strerror(errno));
		goto wipe;
	}
	hex[len - 1] = '\0';
	*out = xstrdup(hex);
	OPENSSL_cleanse(hex, sizeof(hex));
	log_info("srs: made a new secret in %s", path);
	return 1;
fail:
	e = errno;
	if (fd != -1)
		close(fd);
	unlink(tmp);
	bsnprintf(err, errsize, "%s: %s", tmp, strerror(e));
wipe:
	OPENSSL_cleanse(hex, sizeof(hex));
	return -1;
}

/*
 * srs_init - secrets from the srs_secret lines (copied), or, with none,
 * the one in queue_dir/srs.secret, made when missing.
 */
int
srs_init(struct srs *srs, char *const *secrets, size_t n, const char *queue_dir,
    char *err, size_t errsize)
{
	char path[4096], *secret = NULL;
	int r;

	memset(srs, 0, sizeof(*srs));
	if (n > SRS_MAX_SECRETS) {
		bsnprintf(err, errsize, "srs_secret: at most %d secrets",
		    SRS_MAX_SECRETS);
		return -1;
	}
	if (n > 0) {
		for (size_t i = 0; i < n; i++) {
			if (secrets[i] == NULL) {
				bsnprintf(err, errsize, "srs_secret: missing");
				return -1;
			}
			if (!secret_check(secrets[i], "srs_secret", err, errsize))
				return -1;
		}
		for (size_t i = 0; i < n; i++)
			srs->secrets[srs->nsecrets++] = xstrdup(secrets[i]);
		return 0;
	}

	if (queue_dir == NULL || *queue_dir == '\0') {
		bsnprintf(err, errsize, "srs: no srs_secret and no queue_dir");
		return -1;
	}
	if (!bsnprintf(path, sizeof(path), "%s/%s", queue_dir,
	    SRS_SECRET_FILE)) {
		bsnprintf(err, errsize, "%s: path too long", queue_dir);
		return -1;
	}
	if ((r = secret_read(path, &secret, err, errsize)) == 0)
		r = secret_make(queue_dir, path, &secret, err, errsize);
	if (r == -1)
		goto fail;
	srs->secrets[srs->nsecrets++] = secret;
	return 0;
fail:
	srs_free(srs);
	return -1;
}

/* srs_free - forget the secrets */
void
srs_free(struct srs *srs)
{
	for (size_t i = 0; i < srs->nsecrets; i++) {
		OPENSSL_cleanse(srs->secrets[i], strlen(srs->secrets[i]));
		free(srs->secrets[i]);
	}
	memset(srs, 0, sizeof(*srs));
}
