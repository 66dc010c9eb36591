# args.awk: the owned-flag rules, shared by both patchers. The caller fills ARGLINE[1..NARG]
# (the line of each argument item), ARGVAL (its decoded value), ARGSTYLE ("d", "s" or "p":
# how it is quoted) and ARGTAIL (the line new flags go after), then calls patch_args.
#
# kube-apiserver reads its flags left to right and the last occurrence wins, so after the
# patch each wanted flag appears once, as --name=value, in place of its first occurrence;
# later occurrences and stale owned flags are dropped. A flag whose value is the next item
# ("--audit-log-path" then "-") loses that item too: left behind it would be a positional
# argument, which kube-apiserver refuses. Every occurrence of a list flag (--feature-gates)
# is merged into the first one, so no later occurrence overrides the wanted items.

# Is the item after a value-less --flag that flag's value? "-" and negative numbers are
# values; any other item starting with "-" is the next flag.
function dash_value(s) { return s == "-" || s ~ /^-[0-9.]/ }

function patch_args(   k, item, a, body, p, nm, v, hv, nx, pfx, out, i, added, cnt, st, first, merged) {
    split("", DONE)
    split("", LFIRST)
    split("", LVAL)
    split("", LTOUCH)
    cnt["d"] = cnt["s"] = cnt["p"] = 0
    for (k = 1; k <= NARG; k++) cnt[ARGSTYLE[k]]++
    for (k = 1; k <= NARG; k++) {
        item = ARGLINE[k]
        a = ARGVAL[k]
        if (substr(a, 1, 2) != "--" || (item in DEL)) continue
        body = substr(a, 3)
        p = index(body, "=")
        hv = p > 0
        nm = hv ? substr(body, 1, p - 1) : body
        v = hv ? substr(body, p + 1) : ""
        # where the apiserver listens, for the readiness check: either form, like flags.py
        if (!hv && k < NARG && (nm == "secure-port" || nm == "bind-address") && substr(ARGVAL[k + 1], 1, 1) != "-")
            v = ARGVAL[k + 1]
        if (nm == "secure-port" && v ~ /^[0-9]+$/) PORT = v
        if (nm == "bind-address" && v ~ /^[0-9A-Fa-f.:]+$/) BIND = v
        if (!(nm in WANT) && !(nm in ISLIST) && !owned_flag(nm)) continue
        nx = 0
        if (!hv && k < NARG) {
            if (substr(ARGVAL[k + 1], 1, 1) != "-") {
                if (!(nm in ISLIST)) { fail("owned flag at line " item " takes its value from the next item (use --name=value)"); return }
                nx = 1
            } else if (dash_value(ARGVAL[k + 1])) nx = 1
            if (nx) {
                v = ARGVAL[k + 1]
                DEL[ARGLINE[k + 1]] = 1
            }
        }
        pfx = substr(L[item], 1, AFTER[item])
        if (nm in WANT) {
            if (nm in DONE) DEL[item] = 1
            else {
                DONE[nm] = 1
                if (!hv || v != WANT[nm]) REP[item] = pfx styled(ARGSTYLE[k], "--" nm "=" WANT[nm])
            }
        } else if (nm in ISLIST) {
            if (nm in LFIRST) {
                DEL[item] = 1
                LTOUCH[nm] = 1
                if (v != "") LVAL[nm] = LVAL[nm] (LVAL[nm] == "" ? "" : ",") v
            } else {
                LFIRST[nm] = k
                LVAL[nm] = v
                if (!hv) LTOUCH[nm] = 1
            }
        } else DEL[item] = 1
    }
    for (nm in LFIRST) {
        k = LFIRST[nm]
        merged = merge_list(nm, LVAL[nm])
        if ((nm in LTOUCH) || merged != LVAL[nm])
            REP[ARGLINE[k]] = substr(L[ARGLINE[k]], 1, AFTER[ARGLINE[k]]) styled(ARGSTYLE[k], "--" nm "=" merged)
    }
    st = "p"
    if (cnt["d"] > cnt["p"] && cnt["d"] >= cnt["s"]) st = "d"
    else if (cnt["s"] > cnt["p"] && cnt["s"] > cnt["d"]) st = "s"
    pfx = substr(L[ARGTAIL], 1, AFTER[ARGTAIL])
    out = ""
    for (i = 1; i <= NFLAG; i++) {
        if (FLAGNAME[i] in DONE) continue
        out = out (out == "" ? "" : "\n") pfx styled(st, "--" FLAGNAME[i] "=" WANT[FLAGNAME[i]])
    }
    split("", added)
    for (i = 1; i <= NLIST; i++) {
        nm = LNAME[i]
        if ((nm in LFIRST) || (nm in added)) continue
        added[nm] = 1
        out = out (out == "" ? "" : "\n") pfx styled(st, "--" nm "=" merge_list(nm, ""))
    }
    if (out != "") add_after(ARGTAIL, out)
}

# Merge the wanted items of list flag nm (KEY or KEY=VALUE) into the comma list v.
function merge_list(nm, v,   n, el, i, k, key, ekey, p, done, out) {
    n = (v == "") ? 0 : split(v, el, ",")
    for (k = 1; k <= NLIST; k++) {
        if (LNAME[k] != nm) continue
        p = index(LITEM[k], "=")
        key = p ? substr(LITEM[k], 1, p - 1) : LITEM[k]
        done = 0
        for (i = 1; i <= n; i++) {
            p = index(el[i], "=")
            ekey = p ? substr(el[i], 1, p - 1) : el[i]
            if (ekey != key) continue
            if (done) el[i] = "\001"
            else el[i] = LITEM[k]
            done = 1
        }
        if (!done) el[++n] = LITEM[k]
    }
    out = ""
    for (i = 1; i <= n; i++) {
        if (el[i] == "\001") continue
        out = out (out == "" ? "" : ",") el[i]
    }
    return out
}

