# static-pod.awk: patches a kube-apiserver static pod manifest (run after yaml.awk and
# args.awk). The kube-apiserver container's command list gets the owned flags (args.awk);
# its volumeMounts and spec.volumes get the wanted hostPath volumes (named with the owned
# prefix, or an existing hand-made one at the same host and mount path, which is adopted);
# metadata.annotations gets auditc.dev/config-digest, so a change of the config files alone
# still restarts the pod. Every other line is kept as it was.

function render_item(kind, k, D, O,   p, q, r, s) {
    p = spaces(D) "-" spaces(O - 1)
    q = spaces(D + O)
    if (kind == "mount") {
        s = p "mountPath: " yq(VMOUNT[k]) "\n" q "name: " yq(VNAME[k])
        if (VRO[k] == "true") s = s "\n" q "readOnly: true"
        return s
    }
    r = spaces(D + O + UNIT)
    s = p "hostPath:\n" r "path: " yq(VHOST[k])
    if (VTYPE[k] != "") s = s "\n" r "type: " yq(VTYPE[k])
    return s "\n" q "name: " yq(VNAME[k])
}

function render_all(kind, D, O,   k, s) {
    s = ""
    for (k = 1; k <= NV; k++) {
        if (VNAME[k] in SEEN) continue
        s = s (s == "" ? "" : "\n") render_item(kind, k, D, O)
    }
    return s
}

# hostPath of every volume in the list under key line kl (key column kc), normalized, by
# volume name (VOLHOST): what an existing mount at auditc's path must point at to be adopted.
function collect_host_paths(kl, kc,   e, a, D, j, m, it, k, b, c, nm, h, he) {
    split("", VOLHOST)
    if (!kl || !key_at(kl, kc) || KVAL != "") return
    e = value_end(kl, kc)
    a = first_content(kl + 1, e)
    if (!a || !DASH[a] || OPAQUE[a]) return
    D = IND[a]
    m = 0
    for (j = kl + 1; j <= e; j++) if (!SKIP[j] && DASH[j] && !OPAQUE[j] && IND[j] == D) it[++m] = j
    for (k = 1; k <= m; k++) {
        a = it[k]
        b = content_end(a, k < m ? it[k + 1] - 1 : e)
        c = item_col(a, b)
        if (c < 0 || !find_key(a + 1, b, c, "name", a) || !decode(KRAW)) continue
        nm = DEC
        h = find_key(a + 1, b, c, "hostPath", a)
        if (!h || KVAL != "") continue
        he = value_end(h, c)
        j = first_content(h + 1, he)
        if (!j || DASH[j] || OPAQUE[j]) continue
        if (find_key(h + 1, he, IND[j], "path", 0) && decode(KRAW)) VOLHOST[nm] = normal_path(DEC)
    }
}

# A mount (item a..b, mapping at column c, named nm) at the normalized path mp of wanted
# volume j: adopted when its volume has the same host path and it is writable where auditc
# needs writing; else refused, since two mounts cannot share one path.
function adopt_or_refuse(j, a, b, c, nm, mp,   ro) {
    ro = c >= 0 && find_key(a + 1, b, c, "readOnly", a) && decode(KRAW) && DEC == "true"
    if ((nm in VOLHOST) && VOLHOST[nm] == normal_path(VHOST[j]) && (VRO[j] == "true" || !ro) \
        && !(VNAME[j] in ADOPTED)) {
        ADOPTED[VNAME[j]] = nm
        return
    }
    fail("volumeMount " nm " (line " a ") already mounts " mp \
         ", which auditc mounts as " VNAME[j] "; remove it or rename it to " VPFX "...")
}

# Bring the volumes (kind "volume") or volumeMounts (kind "mount") list under key line kl,
# whose keys sit at column kc, in line with the wanted volumes. If kl is 0 the list does not
# exist: create it after line at_end. newD/newO: layout for a list that has no items yet.
# Nothing to add leaves a missing or empty list as it is.
function sync_list(kind, label, kl, kc, at_end, newD, newO,   e, D, O, m, k, a, b, c, j, nm, mp, canon, lastend, it, nms) {
    split("", SEEN)
    for (nm in ADOPTED) SEEN[nm] = 1
    canon = render_all(kind, newD, newO)
    if (!kl) {
        if (canon != "") add_after(at_end, spaces(kc) label ":\n" canon)
        return
    }
    if (KVAL == "[]") {
        if (canon == "") return
        REP[kl] = substr(L[kl], 1, kc) label ":"
        add_after(kl, canon)
        return
    }
    if (KVAL != "") { fail(label " at line " kl " is not a block sequence"); return }
    e = value_end(kl, kc)
    if (e == kl) { if (canon != "") add_after(kl, canon); return }
    a = first_content(kl + 1, e)
    if (!DASH[a] || OPAQUE[a]) { fail(label " at line " kl " is not a block sequence"); return }
    D = IND[a]
    O = AFTER[a] - IND[a]
    if (O < 2) O = 2
    m = 0
    for (j = kl + 1; j <= e; j++) {
        if (SKIP[j]) continue
        if (DASH[j] && !OPAQUE[j] && IND[j] == D) it[++m] = j
        else if (IND[j] <= D) { fail("unexpected line " j " inside " label); return }
    }
    # first the hand-made mounts at auditc's paths (adopted or refused), then auditc's own
    for (k = 1; k <= m; k++) {
        a = it[k]
        b = content_end(a, k < m ? it[k + 1] - 1 : e)
        c = item_col(a, b)
        nm = ""
        mp = ""
        if (c >= 0 && find_key(a + 1, b, c, "name", a) && decode(KRAW)) nm = DEC
        if (c >= 0 && kind == "mount" && find_key(a + 1, b, c, "mountPath", a) && decode(KRAW)) mp = normal_path(DEC)
        if (FAILED) return
        nms[k] = nm
        if (index(nm, VPFX) == 1 || kind != "mount" || mp == "") continue
        for (j = 1; j <= NV; j++) {
            if (normal_path(VMOUNT[j]) != mp) continue
            adopt_or_refuse(j, a, b, c, nm, mp)
            if (FAILED) return
            SEEN[VNAME[j]] = 1
        }
    }
    lastend = kl
    for (k = 1; k <= m; k++) {
        a = it[k]
        b = content_end(a, k < m ? it[k + 1] - 1 : e)
        lastend = b
        nm = nms[k]
        if (index(nm, VPFX) != 1) continue
        if ((nm in WANTVOL) && !(nm in SEEN)) {
            SEEN[nm] = 1
            canon = render_item(kind, WANTVOL[nm], D, O)
            if (join_lines(a, b) != canon) {
                REP[a] = canon
                drop_lines(a + 1, b)
            }
        } else drop_lines(a, b)
    }
    canon = render_all(kind, D, O)
    if (canon != "") add_after(lastend, canon)
}

function patch_annotation(meta,   me, mc, a, ae, ac, j, want, found, t) {
    me = value_end(meta, ROOTC)
    a = first_content(meta + 1, me)
    if (!a || IND[a] <= ROOTC || DASH[a] || OPAQUE[a]) { fail("metadata is not a block mapping"); return }
    mc = IND[a]
    a = find_key(meta + 1, me, mc, "annotations", 0)
    if (FAILED) return
    want = "auditc.dev/config-digest: " yq(DIGEST)
    if (!a) { add_after(meta, spaces(mc) "annotations:\n" spaces(mc + UNIT) want); return }
    if (KVAL == "{}") {
        REP[a] = substr(L[a], 1, mc) "annotations:"
        add_after(a, spaces(mc + UNIT) want)
        return
    }
    if (KVAL != "") { fail("metadata.annotations at line " a " is not a block mapping"); return }
    ae = value_end(a, mc)
    if (ae == a) { add_after(a, spaces(mc + UNIT) want); return }
    j = first_content(a + 1, ae)
    if (DASH[j] || OPAQUE[j]) { fail("metadata.annotations at line " a " is not a block mapping"); return }
    ac = IND[j]
    found = 0
    for (j = a + 1; j <= ae; j++) {
        if (SKIP[j] || OPAQUE[j] || IND[j] != ac) continue
        t = substr(L[j], ac + 1)
        if (index(t, "auditc.dev/config-digest:") == 1 || index(t, "\"auditc.dev/config-digest\":") == 1 \
            || index(t, "'auditc.dev/config-digest':") == 1) {
            if (found) { DEL[j] = 1; continue }
            found = j
            if (value_end(j, ac) != j) drop_lines(j + 1, value_end(j, ac))
            if (L[j] != spaces(ac) want) REP[j] = spaces(ac) want
        }
    }
    if (!found) add_after(content_end(a, ae), spaces(ac) want)
}

# Look at container item a..b (mapping at column c): fills C_* for container number ci.
function inspect_container(ci, a, b, c,   k, e, j, dd, n, first, t) {
    C_LINE[ci] = a
    C_END[ci] = b
    C_COL[ci] = c
    C_NAME[ci] = ""
    C_FORM[ci] = "none"
    C_PROG[ci] = ""
    C_SHELL[ci] = 0
    C_BAD[ci] = 0
    C_MENTION[ci] = 0
    for (j = a; j <= b; j++) if (!SKIP[j] && index(L[j], "kube-apiserver")) C_MENTION[ci] = 1
    if (c < 0) return
    if (find_key(a + 1, b, c, "name", a) && decode(KRAW)) C_NAME[ci] = DEC
    if (C_NAME[ci] == "kube-apiserver") C_MENTION[ci] = 1
    C_ARGS[ci] = find_key(a + 1, b, c, "args", a)
    C_VM[ci] = find_key(a + 1, b, c, "volumeMounts", a)
    k = find_key(a + 1, b, c, "command", a)
    C_CMD[ci] = k
    if (!k || FAILED) return
    if (KVAL ~ /^\[/) { C_FORM[ci] = "flow"; return }
    if (KVAL != "") { C_FORM[ci] = "other"; return }
    e = value_end(k, c)
    C_CMDEND[ci] = e
    first = first_content(k + 1, e)
    if (!first || !DASH[first] || OPAQUE[first]) { C_FORM[ci] = "other"; return }
    C_FORM[ci] = "block"
    dd = IND[first]
    C_CMDD[ci] = dd
    n = 0
    for (j = k + 1; j <= e; j++) {
        if (SKIP[j]) continue
        if (!DASH[j] || OPAQUE[j] || IND[j] != dd) { C_BAD[ci] = j; continue }
        n++
        if (!decode(substr(L[j], AFTER[j] + 1))) { if (!C_BAD[ci]) C_BAD[ci] = j; DEC = "" }
        if (n == 1) C_PROG[ci] = DEC
        if (DEC == "-c") C_SHELL[ci] = 1
    }
    t = C_PROG[ci]
    sub(/.*\//, "", t)
    if (t ~ /^(sh|bash|ash|dash|ksh|zsh|busybox)$/) C_SHELL[ci] = 1
}

function load_command(ci,   k, e, j, n) {
    k = C_CMD[ci]
    e = C_CMDEND[ci]
    n = 0
    for (j = k + 1; j <= e; j++) {
        if (SKIP[j]) continue
        decode(substr(L[j], AFTER[j] + 1))
        CMDLINE[++n] = j
        CMDVAL[n] = DEC
    }
    NCMD = n
}

function patch_static_pod(   i, first, kind, meta, spec, se, sc, cont, ce, cd, m, k, a, b, it, t, ci, why, ko, co, seqoff) {
    first = first_content(BODY_START, BODY_END)
    if (!first) { fail("the manifest is empty"); return }
    if (refuse_json("the manifest", first)) return
    if (refuse_unread_keys()) return
    if (DASH[first] || OPAQUE[first]) { fail("the manifest is not a YAML mapping"); return }
    ROOTC = IND[first]
    for (i = first; i <= BODY_END; i++)
        if (!SKIP[i] && IND[i] < ROOTC) { fail("line " i " is indented less than the first line"); return }
    kind = find_key(first, BODY_END, ROOTC, "kind", 0)
    if (FAILED) return
    if (!kind || !decode(KRAW) || DEC != "Pod") { fail("not a Pod manifest (kind: Pod not found)"); return }
    meta = find_key(first, BODY_END, ROOTC, "metadata", 0)
    if (FAILED) return
    if (!meta || KVAL != "") { fail("metadata is missing or not a block mapping"); return }
    spec = find_key(first, BODY_END, ROOTC, "spec", 0)
    if (FAILED) return
    if (!spec || KVAL != "") { fail("spec is missing or not a block mapping: no kube-apiserver container found"); return }
    se = value_end(spec, ROOTC)
    a = first_content(spec + 1, se)
    if (!a || DASH[a] || OPAQUE[a] || IND[a] <= ROOTC) { fail("spec is not a block mapping"); return }
    sc = IND[a]
    UNIT = sc - ROOTC
    cont = find_key(spec + 1, se, sc, "containers", 0)
    if (FAILED) return
    if (!cont) { fail("spec.containers not found: no kube-apiserver container found"); return }
    if (KVAL ~ /^\[/) { fail("spec.containers is a flow sequence ([...])"); return }
    if (KVAL != "") { fail("spec.containers is not a block sequence"); return }
    ce = value_end(cont, sc)
    a = first_content(cont + 1, ce)
    if (!a || !DASH[a] || OPAQUE[a]) { fail("spec.containers is empty: no kube-apiserver container found"); return }
    cd = IND[a]
    m = 0
    for (i = cont + 1; i <= ce; i++) if (!SKIP[i] && DASH[i] && !OPAQUE[i] && IND[i] == cd) it[++m] = i
    TARGET = 0
    for (k = 1; k <= m; k++) {
        a = it[k]
        b = content_end(a, k < m ? it[k + 1] - 1 : ce)
        inspect_container(k, a, b, item_col(a, b))
        if (FAILED) return
        t = C_PROG[k]
        if (C_FORM[k] == "block" && (t == "kube-apiserver" || t ~ /\/kube-apiserver$/)) {
            if (TARGET) { fail("more than one container runs kube-apiserver"); return }
            TARGET = k
        }
    }
    if (!TARGET) {
        for (k = 1; k <= m; k++) {
            if (!C_MENTION[k]) continue
            if (C_FORM[k] == "flow" && C_ARGS[k]) why = "its command is a flow sequence ([...]) and its flags are in args:; " \
                "write kube-apiserver and every flag as one block list under command: (and remove args:)"
            else if (C_FORM[k] == "flow") why = "its command is a flow sequence ([...]); write it as a block list"
            else if (C_SHELL[k]) why = "it is started through a shell (sh -c \"...\"); the flags are inside one string"
            else if (C_FORM[k] == "none" && C_ARGS[k]) why = "it has no command; the flags are in args:"
            else why = "its command does not start with kube-apiserver"
            fail("container " (C_NAME[k] == "" ? k : C_NAME[k]) " looks like kube-apiserver but cannot be patched: " why)
            return
        }
        fail("no kube-apiserver container found in spec.containers")
        return
    }
    ci = TARGET
    if (C_ARGS[ci]) { fail("the kube-apiserver container has args: (flags in args are not supported; move them to command)"); return }
    if (C_BAD[ci]) { fail("unsupported YAML in the kube-apiserver command list at line " C_BAD[ci] " (only one-line scalars are supported)"); return }
    load_command(ci)
    # the program (item 1) is no flag; new flags go after the last item
    NARG = 0
    for (k = 2; k <= NCMD; k++) {
        ARGLINE[++NARG] = CMDLINE[k]
        ARGVAL[NARG] = CMDVAL[k]
        ARGSTYLE[NARG] = "p"
    }
    ARGTAIL = CMDLINE[NCMD]
    patch_args()
    if (FAILED) return
    # layout for lists that do not exist yet: like the command list and the containers list
    ko = C_COL[ci]
    seqoff = C_CMDD[ci] - ko
    co = AFTER[C_LINE[ci]] - IND[C_LINE[ci]]
    if (co < 2) co = 2
    k = find_key(spec + 1, se, sc, "volumes", 0)
    if (FAILED) return
    collect_host_paths(k, sc)
    if (FAILED) return
    if (C_VM[ci]) key_at(C_VM[ci], ko)
    sync_list("mount", "volumeMounts", C_VM[ci], ko, C_END[ci], ko + seqoff, co)
    if (FAILED) return
    if (k) key_at(k, sc)
    sync_list("volume", "volumes", k, sc, content_end(spec, se), cd, co)
    if (FAILED) return
    patch_annotation(meta)
}

BEGIN {
    read_input()
    if (!FAILED) patch_static_pod()
    finish()
}
