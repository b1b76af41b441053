/* hmap.c - string-keyed hash map for tables, and the counter maps (hmap.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "util.h"

struct hmap_entry {
	struct hmap_entry *next;
	uint64_t hash;
	void *val;
	char key[];
};

struct hmap {
	struct hmap_entry **buckets;
	size_t nbuckets;
	size_t count;
};

/* FNV-1a */
static uint64_t
hmap_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

struct hmap *
hmap_new(void)
{
	struct hmap *m = xcalloc(1, sizeof(*m));

	m->nbuckets = 16;
	m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
	return m;
}

void
hmap_free(struct hmap *m, void (*free_val)(void *))
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct hmap_entry *e = m->buckets[i], *n;

		for (; e; e = n) {
			n = e->next;
			if (free_val)
				free_val(e->val);
			free(e);
		}
	}
	free(m->buckets);
	free(m);
}

static void
hmap_grow(struct hmap *m)
{
	size_t nb = m->nbuckets * 2;
	struct hmap_entry **b = xcalloc(nb, sizeof(*b));

	for (size_t i = 0; i < m->nbuckets; i++) {
		struct hmap_entry *e = m->buckets[i], *n;

		for (; e; e = n) {
			n = e->next;
			e->next = b[e->hash % nb];
			b[e->hash % nb] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
}

static struct hmap_entry **
hmap_find(const struct hmap *m, const char *key, uint64_t h)
{
	struct hmap_entry **ep = &m->buckets[h % m->nbuckets];

	for (; *ep; ep = &(*ep)->next)
		if ((*ep)->hash == h && strcmp((*ep)->key, key) == 0)
			break;
	return ep;
}

void *
hmap_put(struct hmap *m, const char *key, void *val)
{
	uint64_t h = hmap_hash(key);
	struct hmap_entry **ep = hmap_find(m, key, h), *e;
	size_t klen;

	if (*ep) {
		void *old = (*ep)->val;

		(*ep)->val = val;
		return old;
	}
	if (m->count >= m->nbuckets) {
		hmap_grow(m);
		ep = hmap_find(m, key, h);
	}
	klen = strlen(key);
	e = xmalloc(sizeof(*e) + klen + 1);
	memcpy(e->key, key, klen + 1);
	e->hash = h;
	e->val = val;
	e->next = NULL;
	*ep = e;
	m->count++;
	return NULL;
}

void *
hmap_get(const struct hmap *m, const char *key)
{
	struct hmap_entry **ep = hmap_find(m, key, hmap_hash(key));

	return *ep ? (*ep)->val : NULL;
}

void *
hmap_del(struct hmap *m, const char *key)
{
	struct hmap_entry **ep = hmap_find(m, key, hmap_hash(key)), *e;
	void *val;

	if ((e = *ep) == NULL)
		return NULL;
	*ep = e->next;
	val = e->val;
	free(e);
	m->count--;
	return val;
}

size_t
hmap_count(const struct hmap *m)
{
	return m->count;
}

void
hmap_walk(const struct hmap *m, void (*fn)(const char *, void *, void *), void *arg)
{
	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct hmap_entry *e = m->buckets[i]; e; e = e->next)
			fn(e->key, e->val, arg);
}

size_t
hmap_count_of(const struct hmap *m, const char *key)
{
	return (size_t)(uintptr_t)hmap_get(m, key);
}

bool
hmap_count_add(struct hmap *m, const char *key, size_t max)
{
	size_t n = hmap_count_of(m, key);

	if (n >= max)
		return false;
	hmap_put(m, key, (void *)(uintptr_t)(n + 1));
	return true;
}

void
hmap_count_release(struct hmap *m, const char *key)
{
	size_t n = hmap_count_of(m, key);

	if (n <= 1)
		hmap_del(m, key);
	else
		hmap_put(m, key, (void *)(uintptr_t)(n - 1));
}
