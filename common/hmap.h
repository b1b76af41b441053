/*
 * hmap.h - a small string-keyed hash map (chained, grows by doubling), and
 * counter maps on it: connections per client address (smtpd/), forward
 * sessions per domain and per client (forward/), deliveries per domain
 * (queue/).
 */
#ifndef CHAMOIS_HMAP_H
#define CHAMOIS_HMAP_H

#include <stdbool.h>
#include <stddef.h>

struct hmap;

struct hmap *hmap_new(void);
/* hmap_free - frees the map; free_val (may be NULL) is called on each value */
void hmap_free(struct hmap *, void (*free_val)(void *));
/* hmap_put - inserts or replaces; returns the old value or NULL */
void *hmap_put(struct hmap *, const char *key, void *val);
void *hmap_get(const struct hmap *, const char *key);
void *hmap_del(struct hmap *, const char *key);
size_t hmap_count(const struct hmap *);
/* hmap_walk - calls fn for every entry, in no particular order */
void hmap_walk(const struct hmap *, void (*fn)(const char *, void *, void *), void *arg);

/*
 * Counter maps: a map whose values are counts, not pointers.  A key is
 * present only while its count is above zero, so hmap_count() is the
 * number of keys counted and the map never grows with keys seen once.
 * Use only these three on such a map (and hmap_new/hmap_free(m, NULL)).
 */
/* hmap_count_of - the count of key; 0 when absent */
size_t hmap_count_of(const struct hmap *, const char *key);
/*
 * hmap_count_add - count one more for key if its count is below max
 * (true); at max, nothing changes (false).  SIZE_MAX: no bound.
 */
bool hmap_count_add(struct hmap *, const char *key, size_t max);
/* hmap_count_release - one less for key; at zero the key goes (absent: no-op) */
void hmap_count_release(struct hmap *, const char *key);

#endif
