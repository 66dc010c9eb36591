# bpm.awk: patches the args: list of one process (ENVIRON AUDITC_PROCESS) in a
# job's bpm.yml (run after yaml.awk and args.awk). A replaced arg keeps the quoting of its
# line; new ones take the style most args use. No volumes: bpm mounts the job directory.

# processes: -> the item named PROCESS -> its args: block sequence of one-line scalars.
function patch_bpm(   first, i, procs, pe, a, b, cd, m, it, k, c, target, tc, tb, args, ae, dd, j) {
    first = first_content(BODY_START, BODY_END)
    if (!first) { fail("bpm.yml is empty"); return }
    if (refuse_json("bpm.yml", first)) return
    if (refuse_unread_keys()) return
    if (DASH[first] || OPAQUE[first]) { fail("bpm.yml is not a YAML mapping"); return }
    ROOTC = IND[first]
    for (i = first; i <= BODY_END; i++)
        if (!SKIP[i] && IND[i] < ROOTC) { fail("line " i " is indented less than the first line"); return }
    procs = find_key(first, BODY_END, ROOTC, "processes", 0)
    if (FAILED) return
    if (!procs) { fail("no processes: list in bpm.yml (is this a bpm config?)"); return }
    if (KVAL ~ /^\[/) { fail("processes: is a flow sequence ([...]); write it as a block list"); return }
    if (KVAL != "") { fail("processes: at line " procs " is not a block sequence"); return }
    pe = value_end(procs, ROOTC)
    a = first_content(procs + 1, pe)
    if (!a || !DASH[a] || OPAQUE[a]) { fail("processes: is empty: no process named " PROCESS); return }
    cd = IND[a]
    m = 0
    for (i = procs + 1; i <= pe; i++) {
        if (SKIP[i]) continue
        if (DASH[i] && !OPAQUE[i] && IND[i] == cd) it[++m] = i
        else if (IND[i] <= cd && !OPAQUE[i]) { fail("unexpected line " i " inside processes:"); return }
    }
    target = 0
    for (k = 1; k <= m; k++) {
        a = it[k]
        b = content_end(a, k < m ? it[k + 1] - 1 : pe)
        c = item_col(a, b)
        if (c < 0) continue
        if (!find_key(a + 1, b, c, "name", a) || !decode(KRAW) || DEC != PROCESS) {
            if (FAILED) return
            continue
        }
        if (target) { fail("more than one process is named " PROCESS); return }
        target = a
        tb = b
        tc = c
    }
    if (!target) { fail("no process named " PROCESS " in processes:"); return }
    args = find_key(target + 1, tb, tc, "args", target)
    if (FAILED) return
    if (!args) { fail("process " PROCESS " has no args: list"); return }
    if (KVAL ~ /^\[/) { fail("args: of process " PROCESS " is a flow sequence ([...]); write it as a block list"); return }
    if (KVAL != "") { fail("args: of process " PROCESS " at line " args " is not a block sequence"); return }
    ae = value_end(args, tc)
    a = first_content(args + 1, ae)
    if (!a || !DASH[a] || OPAQUE[a]) { fail("args: of process " PROCESS " is empty or not a block sequence"); return }
    dd = IND[a]
    NARG = 0
    for (j = args + 1; j <= ae; j++) {
        if (SKIP[j]) continue
        if (!DASH[j] || OPAQUE[j] || IND[j] != dd || !decode(substr(L[j], AFTER[j] + 1))) {
            fail("unsupported YAML in the args: list of " PROCESS " at line " j " (only one-line scalars are supported)")
            return
        }
        ARGLINE[++NARG] = j
        ARGVAL[NARG] = DEC
        ARGSTYLE[NARG] = style_of(j)
    }
    ARGTAIL = ARGLINE[NARG]
    patch_args()
}

BEGIN {
    PROCESS = ENVIRON["AUDITC_PROCESS"]
    read_input()
    if (!FAILED) patch_bpm()
    finish()
}
