#!/bin/sh
# scripts/mutants.sh [NAME...]: mutation check of the promises (issue 16).
#
# Each mutant below is one small change where a documented promise lives
# (durability, the conflict rule, chains and ticks, the shm seqlock, watch
# delivery, tombstones, the cluster key and login gates, CLI output).  The
# script copies the source tree (as it is, uncommitted changes included)
# to _build/mutants/src, configures one scratch build in
# _build/mutants/build, and then, one mutant at a time: applies the change
# (an exact text replacement that must match exactly once, else the script
# stops: the code moved and the mutant must be updated), builds only what
# the tests need, runs only the tests that should kill it (with a timeout),
# and restores the file.  It prints a table
#
#	mutant | tests run | killed / SURVIVED
#
# and exits 1 if any mutant survived (or did not build).  A surviving
# mutant is a missing test, or a change that changes nothing; the ones
# known to change nothing are marked `equivalent` below, with the reason,
# and are reported as such (and flagged if a test ever kills them).
#
# With NAMEs, only those mutants run.  MUTANTS_DIR overrides the scratch
# directory, MUTANTS_TIMEOUT (600) the seconds per test run.  Needs perl.
# Runs sequentially and builds with -j2 (the tests are timing-sensitive).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
work=${MUTANTS_DIR:-$top/_build/mutants}
tmo=${MUTANTS_TIMEOUT:-600}
src=$work/src
bld=$work/build

# ---- the mutants ----
# One per line, fields separated by " | ":
#   name | file | from | to | make targets | test command [; test command]
#   | expect (killed, or "equivalent: why")
# In from/to, \n is a newline and \t a tab (printf %b).
mutants() {
	cat <<'EOF'
fsync_never | agent/persist.c | \tbool sync = a->cfg.fsync == FSYNC_ALWAYS; | \tbool sync = false; | distkv-agent tests/test_durability tests/fsync_interpose.la | tests/test_durability --filter 'durability_order/*' | killed
end_batch_no_sync | agent/agent.c | \tif ((rc = persist_sync(a)) != 0)\n\t\treturn rc;\n | \trc = 0;\n\t(void)rc;\n | distkv-agent tests/test_cluster | tests/test_cluster --filter 'cluster/replicated_change*' | killed
batch_never_syncs | agent/persist.c | \tif (a->cfg.fsync != FSYNC_BATCH)\n\t\treturn; | \tif (1)\n\t\treturn; | distkv-agent tests/test_durability tests/fsync_interpose.la | tests/test_durability --filter 'durability_order/batch*' | killed
save_no_fsync | agent/persist.c | sb.size)) == 0 && fsync(fd) != 0) | sb.size)) == 0 && 0) | distkv-agent tests/test_durability tests/fsync_interpose.la | tests/test_durability --filter 'durability_order/snapshot*' | killed
save_no_dir_fsync | agent/persist.c | \t\trc = fsync_dir_of(path); | \t\trc = 0; | distkv-agent tests/test_durability tests/fsync_interpose.la | tests/test_durability --filter 'durability_order/snapshot*' | killed
frame_checksum_seed | agent/persist.c | \tput_le32(h + 4, XXH32(h + 8, len, 0)); | \tput_le32(h + 4, XXH32(h + 8, len, 1)); | distkv-agent tests/test_files | tests/test_files | killed
shm_no_recheck | shm/reader.c | \t__atomic_thread_fence(__ATOMIC_ACQUIRE);\n\tif (LOAD(&s->seq) != seq)\n\t\treturn PROBE_RETRY;\n | \t__atomic_thread_fence(__ATOMIC_ACQUIRE);\n | tests/test_shm_hooks | tests/test_shm_hooks | killed
shm_no_odd_check | shm/reader.c | \tif (seq & 1)\n\t\treturn PROBE_RETRY;\n |  | tests/test_shm_hooks | tests/test_shm_hooks | killed
shm_writer_no_odd_seq | shm/writer.c | \tSTORE(&s->seq, seq + 1);\n |  | tests/test_shm_hooks | tests/test_shm_hooks | killed
decide_same_node_tick_flip | agent/agent.c | c = u->chain.l[0].tick > e->chain.l[0].tick ? 1 : -1; | c = u->chain.l[0].tick < e->chain.l[0].tick ? 1 : -1; | tests/test_decide tests/test_tree | tests/test_decide; tests/test_tree | equivalent: equal head names are one node, and a chain holds each node once, so chain_covers/chain_descends decided before (test_decide rows "same head node ...")
decide_name_strcmp | agent/agent.c | int c = memcmp(un->name, en->name, n); | int c = strncmp(un->name, en->name, n); | tests/test_decide | tests/test_decide | killed
decide_name_flip | agent/agent.c | return c > 0 ? APPLY_ACCEPTED : APPLY_CONFLICT_LOST; | return c < 0 ? APPLY_ACCEPTED : APPLY_CONFLICT_LOST; | tests/test_decide | tests/test_decide | killed
decide_tock_flip | agent/agent.c | return u->tock < e->tock ? APPLY_CONFLICT_LOST : APPLY_ACCEPTED; | return u->tock > e->tock ? APPLY_CONFLICT_LOST : APPLY_ACCEPTED; | tests/test_decide | tests/test_decide | killed
decide_ignores_descent | agent/agent.c | if (e->chain.n == 0 \|\| chain_descends(&u->chain, &e->chain)) | if (e->chain.n == 0) | tests/test_decide | tests/test_decide | killed
chain_covers_strict | agent/chain.c | return chain_tick_of(c, e->l[0].node) >= e->l[0].tick; | return chain_tick_of(c, e->l[0].node) > e->l[0].tick; | tests/test_decide | tests/test_decide | killed
local_chain_keeps_own_link | agent/agent.c | if (e->chain.l[i].node != a->self) | if (1) | tests/test_tree | tests/test_tree | killed
local_tick_reused | agent/agent.c | node_raise_tick(a->self, a->self->has_tick ? a->self->tick + 1 : 1); | node_raise_tick(a->self, a->self->has_tick ? a->self->tick : 1); | tests/test_tree | tests/test_tree | killed
watch_max_depth_off_by_one | agent/watch.c | (w->o.max_depth >= 0 && depth > w->o.max_depth)) | (w->o.max_depth >= 0 && depth >= w->o.max_depth)) | distkv-agent tests/test_e2e | tests/test_e2e --filter 'e2e/watch*' | killed
watch_min_depth_off_by_one | agent/watch.c | if (depth < w->o.min_depth \|\| | if (depth <= w->o.min_depth \|\| | distkv-agent tests/test_e2e | tests/test_e2e --filter 'e2e/watch*' | killed
tombstone_keep_ignored | agent/sync.c | if (e->value != NULL \|\| e->chain.n == 0 \|\| e->tock > limit \|\| | if (e->value != NULL \|\| e->chain.n == 0 \|\| | distkv-agent tests/test_cluster | tests/test_cluster --filter 'cluster/tombstone_kept*' | killed
tombstone_floor_ignored | agent/sync.c | \t\t    e->chain.l[0].tick > e->chain.l[0].node->floor)\n | \t\t    0)\n | distkv-agent tests/test_cluster | tests/test_cluster --filter 'cluster/tombstone_purged*' | killed
peer_auth_gate_open | agent/handlers.c | if (hs->need_peer_auth && !proto_str_eq(ao, "peer_auth")) { | if (0) { | distkv-agent tests/test_cluster | tests/test_cluster --filter 'cluster/peer_port*' | killed
peer_auth_any_mac | agent/handlers_cluster.c | \t    r->a->cfg.cluster_key) != 0) { | \t    r->a->cfg.cluster_key) > 1) { | distkv-agent tests/test_cluster | tests/test_cluster --filter 'cluster/peer_port*' | killed
login_gate_open | agent/handlers.c | if (!hs->logged_in && !proto_str_eq(ao, "auth") && | if (0 && !proto_str_eq(ao, "auth") && | distkv-agent tests/test_auth | tests/test_auth | killed
watch_notify_skipped | agent/watch.c | if (a->watches == 0) | if (a->watches != 0) | distkv-agent tests/test_e2e | tests/test_e2e --filter 'e2e/watch*' | killed
chain_not_capped | agent/agent.c | if (in.n > a->cfg.change_length) | if (in.n > a->cfg.change_length + 1) | tests/test_tree tests/test_decide | tests/test_tree; tests/test_decide | killed
log_fetch_inverted | agent/persist.c | \tif (fetch)\n\t\tpack_snapshot(a, &w->buf, false); | \tif (!fetch)\n\t\tpack_snapshot(a, &w->buf, false); | distkv-agent tests/test_files | tests/test_files | killed
cli_first_output_option_wins | cli/args.c | \t\tctx->out = OUT_RAW;\n | \t\tif (ctx->out != OUT_JSON)\n\t\t\tctx->out = OUT_RAW;\n | distkv-cli distkv-agent tests/test_cli | tests/test_cli --filter 'cli/json_then*' | killed
EOF
}

field() {	# field N of a mutant line, trimmed; "\|" stands for "|"
	printf '%s\n' "$1" | sed 's/\\|/\x01/g' | awk -F ' [|] ' -v n="$2" \
	    '{ print $n }' | sed 's/\x01/|/g'
}

apply() {	# file from to: replace the one occurrence of from by to
	FROM=$(printf '%b' "$2") TO=$(printf '%b' "$3") perl -0777 -i -pe '
		my $n = () = /\Q$ENV{FROM}\E/g;
		die "pattern found $n times (want 1)\n" if $n != 1;
		s/\Q$ENV{FROM}\E/$ENV{TO}/;
	' "$1"
}

# ---- the scratch copy and build ----
mkdir -p "$work"
rm -rf "$src"
mkdir -p "$src"
(cd "$top" && tar --exclude=./_build --exclude=./.git -cf - .) |
    (cd "$src" && tar -xf -)
[ -x "$src/configure" ] || (cd "$src" && autoreconf -fi >/dev/null 2>&1)
if [ ! -f "$bld/Makefile" ]; then
	mkdir -p "$bld"
	(cd "$bld" && "$src/configure" -q)
fi
echo "mutants.sh: building the unmutated tree in $bld ..."
make -C "$bld" -j2 >"$work/build.log" 2>&1 &&
    make -C "$bld" -j2 check TESTS= >>"$work/build.log" 2>&1 || {
	echo "mutants.sh: the unmutated tree does not build; see $work/build.log" >&2
	exit 1
}

# Check every pattern first: a stale mutant stops the run before any time
# is spent.
mutants | while IFS= read -r line; do
	name=$(field "$line" 1)
	file=$(field "$line" 2)
	cp "$top/$file" "$work/probe"
	if ! apply "$work/probe" "$(field "$line" 3)" "$(field "$line" 4)"; then
		echo "mutants.sh: mutant $name no longer applies to $file" >&2
		exit 1
	fi
done
rm -f "$work/probe"

results=$work/results
: >"$results"
mutants | while IFS= read -r line; do
	name=$(field "$line" 1)
	if [ $# -gt 0 ]; then
		want=no
		for n in "$@"; do [ "$n" = "$name" ] && want=yes; done
		[ $want = yes ] || continue
	fi
	file=$(field "$line" 2)
	targets=$(field "$line" 5)
	tests=$(field "$line" 6)
	expect=$(field "$line" 7)
	log=$work/$name.log
	cp "$top/$file" "$src/$file"
	apply "$src/$file" "$(field "$line" 3)" "$(field "$line" 4)"
	printf 'mutants.sh: %-30s ' "$name"
	if ! make -C "$bld" -j2 $targets >"$log" 2>&1; then
		result="BUILD FAILED"
	else
		result=SURVIVED
		# each test command in turn; the first failure kills
		oldifs=$IFS
		IFS=';'
		for t in $tests; do
			IFS=$oldifs
			if ! (cd "$bld" && DISTKV_TOP_BUILDDIR=$bld &&
			    export DISTKV_TOP_BUILDDIR &&
			    eval "timeout $tmo ./$(echo $t)") >>"$log" 2>&1; then
				result=killed
				break
			fi
		done
		IFS=$oldifs
	fi
	case $expect in
	equivalent*)
		[ "$result" = SURVIVED ] && result="equivalent (survives)" ||
		    result="$result (marked equivalent: check it)"
		;;
	esac
	echo "$result"
	printf '%s | %s | %s\n' "$name" "$tests" "$result" >>"$results"
	cp "$top/$file" "$src/$file"	# restored (newer mtime: rebuilt)
done

echo
echo "mutant | tests run | result"
echo "--- | --- | ---"
cat "$results"
if grep -qE '\| (SURVIVED|BUILD FAILED)$|check it\)$' "$results"; then
	echo "mutants.sh: some mutants survived or did not build (logs in $work)"
	exit 1
fi
echo "mutants.sh: no survivor"
