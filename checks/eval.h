/*
 * eval.h - inside checks/: the three evaluators (spf.c, dkim_verify.c,
 * dmarc.c) that checks.c drives, and the cancellable DNS look-up they
 * share (lookup.c).  Everything runs on the loop; a done callback may run
 * from inside any of these calls, so checks.c only counts them and
 * reports from its own deferred event.
 */
#ifndef CHAMOIS_CHECKS_EVAL_H
#define CHAMOIS_CHECKS_EVAL_H

#include "../outbound/resolver.h"
#include "checks.h"

/* what an evaluator says when its work is done */
typedef void (*eval_done_cb)(void *arg);

/*
 * lookup_start - resolver_records that can be cancelled: cb runs once
 * (possibly from inside this call, then NULL is returned), unless
 * lookup_cancel came first.  After cb the handle is gone.
 */
struct lookup;
struct lookup *lookup_start(struct resolver *, const char *name, enum dns_rr,
    resolver_records_cb cb, void *arg);
void lookup_cancel(struct lookup *);

/*
 * SPF (spf.c): starts at once; writes out->spf, spf_helo, spf_identity
 * and spf_domain, then done(arg).  free cancels.
 */
struct spf_eval;
struct spf_eval *spf_eval_start(struct resolver *,
    const struct auth_check_params *, struct auth_results *out,
    eval_done_cb done, void *arg);
void spf_eval_free(struct spf_eval *);

/*
 * DKIM (dkim_verify.c): header fields one by one (LF form, folds kept,
 * without the final LF), the end of the header, the body (LF form), then
 * finish: once every key is in, the verification runs on the CPU pool and
 * done(arg) follows on the loop with out->dkim filled.  free cancels; a
 * verification in flight then finishes alone and touches nothing of ours.
 */
struct dkim_eval;
struct dkim_eval *dkim_eval_new(struct resolver *, eval_done_cb done, void *arg);
void dkim_eval_header(struct dkim_eval *, const char *field, size_t len);
void dkim_eval_eoh(struct dkim_eval *);
void dkim_eval_body(struct dkim_eval *, const char *text, size_t len);
void dkim_eval_finish(struct dkim_eval *, struct auth_results *out);
void dkim_eval_free(struct dkim_eval *);

/*
 * DMARC (dmarc.c): starts the look-ups of from_domain's records at once;
 * done(arg) when they are in.  dmarc_eval_result then sets out->dmarc,
 * policy and testing from out's SPF and DKIM results.
 */
struct dmarc_eval;
struct dmarc_eval *dmarc_eval_start(struct resolver *, const char *from_domain,
    eval_done_cb done, void *arg);
void dmarc_eval_result(struct dmarc_eval *, struct auth_results *out);
void dmarc_eval_free(struct dmarc_eval *);

/*
 * tag_value - the value of tag name in a tag=value; list (DKIM-Signature,
 * DKIM key, DMARC record), FWS removed; false when absent or too long
 */
bool tag_value(const char *v, size_t n, const char *name, char *buf,
    size_t size);

#endif
