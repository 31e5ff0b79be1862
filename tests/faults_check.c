/*
 * faults_check: the check after distkv-faults' fault run (faults.c), on
 * the nodes' converged dumps: every acknowledged write is kept, or
 * superseded by a write that wins the conflict rules (lost only with the
 * state dir of every node that held it); every answered read is still
 * there or explained the same way; no (node, tick) names two writes.
 * print_divergence shows what the nodes hold when they do not converge.
 */
#include "faults.h"

/* Decode a dump chain (nested {node, tick, prev} maps). */
size_t
parse_chain(const uint8_t *b, size_t len, struct link *out, size_t max)
{
	msgpack_unpacked up;
	const msgpack_object *o;
	size_t n = 0;

	if (b == NULL)
		return 0;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)b, len, NULL) !=
	    MSGPACK_UNPACK_SUCCESS) {
		msgpack_unpacked_destroy(&up);
		return 0;
	}
	o = &up.data;
	while (o != NULL && o->type == MSGPACK_OBJECT_MAP && n < max) {
		const msgpack_object *next = NULL;

		memset(&out[n], 0, sizeof(out[n]));
		for (uint32_t k = 0; k < o->via.map.size; k++) {
			const msgpack_object *key = &o->via.map.ptr[k].key;
			const msgpack_object *v = &o->via.map.ptr[k].val;

			if (key->type != MSGPACK_OBJECT_STR)
				continue;
			if (key->via.str.size == 4 &&
			    !memcmp(key->via.str.ptr, "node", 4) &&
			    v->type == MSGPACK_OBJECT_STR)
				snprintf(out[n].node, sizeof(out[n].node),
				    "%.*s", (int)v->via.str.size,
				    v->via.str.ptr);
			else if (key->via.str.size == 4 &&
			    !memcmp(key->via.str.ptr, "tick", 4) &&
			    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
				out[n].tick = v->via.u64;
			else if (key->via.str.size == 4 &&
			    !memcmp(key->via.str.ptr, "prev", 4))
				next = v;
		}
		n++;
		o = next;
	}
	msgpack_unpacked_destroy(&up);
	return n;
}

/*
 * What a node stated about fk/<key>: an acknowledged write or an answered
 * read.  value: msgpack bytes (nil for a delete), borrowed.
 */
struct claim {
	int key;
	const uint8_t *value;
	size_t value_len;
	const char *head;
	uint64_t tick, tock;
};

/* Does the final entry (head fh/ftick, tock ftock) win over claim c? */
static bool
conflict_wins(const char *fh, uint64_t ftick, uint64_t ftock,
    const struct claim *c)
{
	int cmp;

	if (ftock != c->tock)
		return ftock > c->tock;
	if ((cmp = strcmp(fh, c->head)) != 0)
		return cmp > 0;
	return ftick > c->tick;
}

/* The item of workload key ["fk", key] in d, or NULL. */
const struct cluster_item *
key_item(const struct cluster_dump *d, int key)
{
	distkv_path *p = cluster_path("fk", key);
	const struct cluster_item *it = cluster_dump_find_path(d, p);

	distkv_path_free(p);
	return it;
}

/*
 * Does the tree d keep claim c (the rule in faults.c's header)?  If not,
 * why says what differed.
 */
static bool
claim_kept(const struct cluster_dump *d, const struct claim *c, char *why,
    size_t whylen)
{
	const struct cluster_item *it = key_item(d, c->key);
	struct link l[CLUSTER_MAX_ARGS];
	bool ok = false;
	size_t n;

	if (it == NULL) {
		snprintf(why, whylen, "key missing from the tree");
		return false;
	}
	if ((n = parse_chain(it->chain, it->chain_len, l,
	    CLUSTER_MAX_ARGS)) == 0) {
		snprintf(why, whylen, "final entry has no chain");
		return false;
	}
	if (!strcmp(l[0].node, c->head) && l[0].tick == c->tick) {
		if (it->value_len == c->value_len &&
		    !memcmp(it->value, c->value, c->value_len))
			return true;
		snprintf(why, whylen, "final head is the same but the value "
		    "differs (%zu bytes, first 0x%02x)", it->value_len,
		    it->value_len > 0 ? it->value[0] : 0);
		return false;
	}
	for (size_t j = 0; j < n && !ok; j++)
		ok = !strcmp(l[j].node, c->head) && l[j].tick >= c->tick;
	if (!ok)
		ok = conflict_wins(l[0].node, l[0].tick, it->tock, c);
	if (!ok)
		snprintf(why, whylen, "lost to %s:%llu tock %llu, which "
		    "neither descends from it nor wins the conflict rule",
		    l[0].node, (unsigned long long)l[0].tick,
		    (unsigned long long)it->tock);
	return ok;
}

/* The claim of write w; *buf (free it) holds the value bytes. */
static struct claim
write_claim(const struct write_rec *w, uint8_t **buf)
{
	/* a delete leaves nil in the dump */
	static const uint8_t nil = 0xc0;
	struct claim c;

	memset(&c, 0, sizeof(c));
	*buf = NULL;
	c.key = w->key;
	if (w->del) {
		c.value = &nil;
		c.value_len = 1;
	} else {
		*buf = pack_int(w->value, &c.value_len);
		c.value = *buf;
	}
	c.head = w->head;
	c.tick = w->tick;
	c.tock = w->tock;
	return c;
}

bool
write_kept(const struct cluster_dump *d, const struct write_rec *w,
    char *why, size_t whylen)
{
	uint8_t *buf;
	struct claim c = write_claim(w, &buf);
	bool ok = claim_kept(d, &c, why, whylen);

	free(buf);
	return ok;
}

int
check_writes(struct run *r, const struct cluster_dump *d, int *expected)
{
	int violations = 0, shown = 0;

	*expected = 0;
	for (size_t k = 0; k < r->nw; k++) {
		const struct write_rec *w = &r->w[k];
		char why[400];

		if (write_kept(d, w, why, sizeof(why)))
			continue;
		if (w->epoch < r->epoch[w->node]) {
			(*expected)++;	/* its node's state dir was emptied */
			continue;
		}
		violations++;
		if (shown++ < 20)
			fprintf(stderr, "faults: VIOLATION: %s of fk/%d = %lld "
			    "acked by %s at %.3f s: head %s:%llu tock %llu: "
			    "%s\n", w->del ? "delete" : "set", w->key,
			    (long long)w->value, r->c.node[w->node].name,
			    (double)w->t_ms / 1000.0, w->head,
			    (unsigned long long)w->tick,
			    (unsigned long long)w->tock, why);
	}
	return violations;
}

static int
node_index(const struct run *r, const char *name)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->c.node[i].name, name))
			return i;
	return -1;
}

/*
 * May the value of read rd be gone for the known reason?  Only if every
 * copy we know of went with an emptied state dir: the answering node's
 * (emptied after the read) and the writer's (the incarnation that made
 * the write was emptied later; for a write never acknowledged to us we
 * cannot tell the incarnation: any emptying of the head's node counts).
 */
static bool
read_loss_expected(const struct run *r, const struct read_rec *rd)
{
	int h;

	if (rd->epoch >= r->epoch[rd->node])
		return false;
	for (size_t k = 0; k < r->nw; k++)
		if (r->w[k].tick == rd->tick && !strcmp(r->w[k].head,
		    rd->head))
			return r->w[k].epoch < r->epoch[r->w[k].node];
	h = node_index(r, rd->head);
	return h >= 0 && r->epoch[h] > 0;
}

int
check_reads(struct run *r, const struct cluster_dump *d, int *expected)
{
	int violations = 0, shown = 0;

	*expected = 0;
	for (size_t k = 0; k < r->nrd; k++) {
		const struct read_rec *rd = &r->rd[k];
		struct claim c;
		int64_t v = 0;
		char why[400];

		memset(&c, 0, sizeof(c));
		c.key = rd->key;
		c.value = rd->value;
		c.value_len = rd->value_len;
		c.head = rd->head;
		c.tick = rd->tick;
		c.tock = rd->tock;
		if (claim_kept(d, &c, why, sizeof(why)))
			continue;
		if (read_loss_expected(r, rd)) {
			(*expected)++;
			continue;
		}
		violations++;
		(void)distkv_value_get_int(rd->value, rd->value_len, &v);
		if (shown++ < 20)
			fprintf(stderr, "faults: READ VIOLATION: %s answered "
			    "fk/%d = %lld at %.3f s: head %s:%llu tock %llu: "
			    "%s\n", r->c.node[rd->node].name, rd->key,
			    (long long)v, (double)rd->t_ms / 1000.0, rd->head,
			    (unsigned long long)rd->tick,
			    (unsigned long long)rd->tock, why);
	}
	return violations;
}

/* Acknowledged writes that share a (node, tick) with another one. */
int
count_tick_reuse(const struct run *r)
{
	int dup = 0;

	for (size_t a = 0; a < r->nw; a++)
		for (size_t b = a + 1; b < r->nw; b++)
			if (r->w[a].tick == r->w[b].tick &&
			    !strcmp(r->w[a].head, r->w[b].head)) {
				if (dup++ < 5)
					fprintf(stderr, "faults: tick reuse: "
					    "%s:%llu acked for fk/%d=%lld and "
					    "fk/%d=%lld\n", r->w[a].head,
					    (unsigned long long)r->w[a].tick,
					    r->w[a].key,
					    (long long)r->w[a].value,
					    r->w[b].key,
					    (long long)r->w[b].value);
				break;
			}
	return dup;
}

/* ---- convergence ---- */

static bool
same_item(const struct cluster_item *a, const struct cluster_item *b)
{
	return a != NULL && b != NULL && a->tock == b->tock &&
	    a->value_len == b->value_len && a->chain_len == b->chain_len &&
	    !memcmp(a->value, b->value, a->value_len) &&
	    (a->chain_len == 0 || !memcmp(a->chain, b->chain, a->chain_len));
}

/*
 * After a convergence timeout: the entries on which the running nodes
 * differ (up to 10), with every node's value, tock and chain.
 */
void
print_divergence(struct run *r)
{
	static struct cluster_dump d[CLUSTER_MAX];
	bool got[CLUSTER_MAX];
	int shown = 0;

	for (int i = 0; i < r->n; i++)
		got[i] = r->c.node[i].h.pid > 0 &&
		    cluster_dump(&r->c, i, &d[i]) == 0;
	/* every path once: at the first node that has it */
	for (int a = 0; a < r->n; a++) {
		for (size_t k = 0; got[a] && k < d[a].n && shown < 10; k++) {
			const struct cluster_item *it = &d[a].it[k];
			bool seen = false, differs = false;

			for (int b = 0; b < a && !seen; b++)
				seen = got[b] && cluster_dump_find(&d[b],
				    it->path, it->path_len) != NULL;
			for (int b = a + 1; b < r->n && !seen && !differs; b++)
				differs = got[b] && !same_item(it,
				    cluster_dump_find(&d[b], it->path,
				    it->path_len));
			if (seen || !differs)
				continue;
			shown++;
			complain("distkv-faults: differs: %s\n",
			    cluster_show(it->path, it->path_len));
			for (int b = a; b < r->n; b++) {
				const struct cluster_item *x = got[b] ?
				    cluster_dump_find(&d[b], it->path,
				    it->path_len) : NULL;

				if (!got[b])
					fprintf(stderr, "  %s: no dump\n",
					    r->c.node[b].name);
				else if (x == NULL)
					fprintf(stderr, "  %s: (no entry)\n",
					    r->c.node[b].name);
				else
					fprintf(stderr, "  %s: value %s tock "
					    "%llu chain %s\n",
					    r->c.node[b].name,
					    cluster_show(x->value, x->value_len),
					    (unsigned long long)x->tock,
					    cluster_show(x->chain, x->chain_len));
			}
		}
	}
	for (int i = 0; i < r->n; i++)
		if (got[i])
			cluster_dump_free(&d[i]);
}
