/* hmap.h - a small string-keyed hash map (chained, grows by doubling). */
#ifndef CHAMOIS_HMAP_H
#define CHAMOIS_HMAP_H

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

#endif
