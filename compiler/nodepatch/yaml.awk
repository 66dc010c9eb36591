# yaml.awk: what the patchers of both modes share. A line-based reader of
# one YAML document: it classifies every line (scan), finds keys and block values by
# indentation, decodes one-line scalars and quotes new ones; the inputs (ENVIRON only,
# never -v or program text) and the output (the patched lines, edits kept apart from the
# original lines: REP replaces, DEL drops, AFTER_TEXT adds after a line).
#
# The environment: AUDITC_FLAGS ("name=value" lines), AUDITC_PREFIXES (owned flag-name
# prefixes), AUDITC_LISTS ("name=item" lines), AUDITC_VOLUMES (tab-separated name, host
# path, mount path, read-only, type), AUDITC_VOLUME_PREFIX, AUDITC_DIGEST; AUDITC_OUT (the
# patched file), AUDITC_INFO (port= and bind= of the apiserver), AUDITC_ERROR (why it
# refused), AUDITC_NOEOL ("1": the input has no final newline). Exit 0, or 2 on refusal.

function fail(msg) {
    if (!FAILED) {
        printf "%s\n", msg > ENVIRON["AUDITC_ERROR"]
        close(ENVIRON["AUDITC_ERROR"])
    }
    FAILED = 1
}
function spaces(k,   s) { s = ""; while (k-- > 0) s = s " "; return s }
function indent_of(s) { match(s, /^ */); return RLENGTH }

# Decode a one-line YAML scalar (plain, '...' or "..."), optionally followed by a comment.
# Sets DEC; returns 0 when the text is not such a scalar (multi-line, tag, anchor, ...).
function decode(s,   c, i, out, ch, rest, p) {
    sub(/^ +/, "", s)
    DEC = ""
    if (s == "" || s ~ /^#/) return 1
    c = substr(s, 1, 1)
    if (c == "'" || c == "\"") {
        out = ""
        i = 2
        while (i <= length(s)) {
            ch = substr(s, i, 1)
            if (c == "'" && ch == "'" && substr(s, i + 1, 1) == "'") { out = out "'"; i += 2; continue }
            if (c == "\"" && ch == "\\") {
                ch = substr(s, i + 1, 1)
                if (ch == "\\" || ch == "\"" || ch == "/") { out = out ch; i += 2; continue }
                return 0
            }
            if (ch == c) {
                rest = substr(s, i + 1)
                if (rest !~ /^ *(#.*)?$/) return 0
                DEC = out
                return 1
            }
            out = out ch
            i++
        }
        return 0
    }
    if (index("&*!|>%@`{[", c) || s ~ /^[-?:]( |$)/) return 0
    p = index(s, " #")
    if (p) s = substr(s, 1, p - 1)
    sub(/ +$/, "", s)
    if (s ~ /: / || s ~ /:$/) return 0
    DEC = s
    return 1
}

# Quote a string as a YAML scalar: plain when that is unambiguous, else single-quoted.
function yq(s,   t) {
    if (s ~ /^[A-Za-z0-9\/_.-][A-Za-z0-9\/_.,=:@+~%-]*$/ && s !~ /:$/ && s != "-" \
        && s !~ /^[-+.]?[0-9]/ && s !~ /^[-+]?\.[A-Za-z]/ \
        && tolower(s) !~ /^(y|n|yes|no|true|false|on|off|null)$/)
        return s
    t = s
    gsub(/'/, "''", t)
    return "'" t "'"
}

# A scalar written back in the style s: "d" double-quoted, "s" single-quoted, "p" plain
# (yq: plain when unambiguous, else single-quoted). Backslashes are escaped one character
# at a time: what gsub makes of "\\" in a replacement differs between awks.
function styled(s, v,   t, i, ch) {
    if (s == "d") {
        t = ""
        for (i = 1; i <= length(v); i++) {
            ch = substr(v, i, 1)
            if (ch == "\\" || ch == "\"") t = t "\\"
            t = t ch
        }
        return "\"" t "\""
    }
    if (s == "s") {
        t = v
        gsub(/'/, "''", t)
        return "'" t "'"
    }
    return yq(v)
}

function style_of(j,   c) {
    c = substr(L[j], AFTER[j] + 1, 1)
    return c == "\"" ? "d" : (c == "'" ? "s" : "p")
}

# If line i holds "key:" at column col, set KEY and KVAL (inline value, comment removed).
function key_at(i, col,   t) {
    KEY = ""
    KVAL = ""
    KRAW = ""
    if (SKIP[i] || OPAQUE[i]) return 0
    t = substr(L[i], col + 1)
    if (!match(t, "^[A-Za-z0-9_./-]+:")) return 0
    if (RLENGTH < length(t) && substr(t, RLENGTH + 1, 1) != " ") return 0
    KEY = substr(t, 1, RLENGTH - 1)
    KRAW = substr(t, RLENGTH + 1)
    KVAL = KRAW
    sub(/^ +/, "", KVAL)
    if (KVAL ~ /^#/) KVAL = ""
    sub(/ +#.*$/, "", KVAL)
    sub(/ +$/, "", KVAL)
    return 1
}

# Find "key:" of the mapping whose keys sit at column col, among lines s..e, and the first
# key of a sequence item on line first (0: none). Duplicate keys are refused.
function find_key(s, e, col, key, first,   i, found, count) {
    found = 0
    count = 0
    if (first > 0 && DASH[first] && AFTER[first] == col && key_at(first, col) && KEY == key) {
        found = first
        count++
    }
    for (i = s; i <= e; i++) {
        if (SKIP[i] || OPAQUE[i] || DASH[i] || IND[i] != col) continue
        if (key_at(i, col) && KEY == key) {
            if (!found) found = i
            count++
        }
    }
    if (count > 1) fail("duplicate key " key ": at line " found)
    if (found) key_at(found, col)
    return found
}

# Last line of the block value of the key on line k (key column c); k when it is empty.
# A sequence may sit at the key column itself ("key:" then "- item" lines).
function value_end(k, c,   i, last, seq) {
    last = k
    seq = -1
    for (i = k + 1; i <= BODY_END; i++) {
        if (SKIP[i]) continue
        if (seq < 0) seq = (IND[i] == c && DASH[i] && !OPAQUE[i])
        if (IND[i] > c || (seq && IND[i] == c && DASH[i] && !OPAQUE[i])) last = i
        else break
    }
    return last
}

function content_end(s, e,   i) {
    for (i = e; i > s; i--) if (!SKIP[i]) return i
    return s
}

function first_content(s, e,   i) {
    for (i = s; i <= e; i++) if (!SKIP[i]) return i
    return 0
}

# Column of the mapping inside the sequence item on line a (item content ends at e).
function item_col(a, e,   t, j) {
    t = substr(L[a], AFTER[a] + 1)
    if (t !~ /^ *(#.*)?$/) return AFTER[a]
    j = first_content(a + 1, e)
    return (j && IND[j] > IND[a]) ? IND[j] : -1
}

function join_lines(s, e,   i, t) {
    t = L[s]
    for (i = s + 1; i <= e; i++) t = t "\n" L[i]
    return t
}

# (mawk 1.3.4 creates A[i] before it tests (i in A) when both sit in one assignment)
function add_after(i, text) { if (i in AFTER_TEXT) AFTER_TEXT[i] = AFTER_TEXT[i] "\n" text; else AFTER_TEXT[i] = text }
function drop_lines(s, e,   i) { for (i = s; i <= e; i++) DEL[i] = 1 }

function owned_flag(name,   k) {
    for (k = 1; k <= NPFX; k++) if (index(name, PFX[k]) == 1) return 1
    return 0
}

function ctl_free(s,   k) {
    for (k = 1; k <= 32; k++) if (index(s, CTL[k])) return 0
    return 1
}

function load_inputs(   n, i, t, p, f, name, k, mp) {
    for (k = 1; k <= 31; k++) CTL[k] = sprintf("%c", k)
    CTL[32] = sprintf("%c", 127)
    VPFX = ENVIRON["AUDITC_VOLUME_PREFIX"]
    DIGEST = ENVIRON["AUDITC_DIGEST"]
    NFLAG = 0
    n = split(ENVIRON["AUDITC_FLAGS"], t, "\n")
    for (i = 1; i <= n; i++) {
        if (t[i] == "") continue
        p = index(t[i], "=")
        name = substr(t[i], 1, p - 1)
        if (name in WANT) { fail("flag --" name " is listed twice in the context"); return }
        FLAGNAME[++NFLAG] = name
        WANT[name] = substr(t[i], p + 1)
        if (!ctl_free(WANT[name])) { fail("value of --" name " contains a control character"); return }
    }
    NPFX = 0
    n = split(ENVIRON["AUDITC_PREFIXES"], t, "\n")
    for (i = 1; i <= n; i++) if (t[i] != "") PFX[++NPFX] = t[i]
    NLIST = 0
    n = split(ENVIRON["AUDITC_LISTS"], t, "\n")
    for (i = 1; i <= n; i++) {
        if (t[i] == "") continue
        p = index(t[i], "=")
        name = substr(t[i], 1, p - 1)
        if (name in WANT) { fail("--" name " is both an owned flag and a list flag"); return }
        LNAME[++NLIST] = name
        LITEM[NLIST] = substr(t[i], p + 1)
        ISLIST[name] = 1
    }
    NV = 0
    n = split(ENVIRON["AUDITC_VOLUMES"], t, "\n")
    for (i = 1; i <= n; i++) {
        if (t[i] == "") continue
        split(t[i], f, "\t")
        if (f[1] in WANTVOL) { fail("volume " f[1] " is listed twice in the context"); return }
        NV++
        VNAME[NV] = f[1]; VHOST[NV] = f[2]; VMOUNT[NV] = f[3]; VRO[NV] = f[4]; VTYPE[NV] = f[5]
        WANTVOL[f[1]] = NV
        mp = normal_path(f[3])
        if (mp in WANTMOUNT) { fail("volumes " WANTMOUNT[mp] " and " f[1] " have the same mount path"); return }
        WANTMOUNT[mp] = f[1]
    }
}

# Classify every line; refuse what a line-based patch cannot handle safely.
function scan(   i, s, marker, content, ended, base, j, t) {
    marker = 0
    content = 0
    ended = 0
    BODY_START = 1
    BODY_END = N
    for (i = 1; i <= N; i++) {
        s = L[i]
        if (index(s, "\r")) { fail("line " i " ends in CR (CRLF line endings are not supported)"); return }
        if (s ~ /^ *\t/ || s ~ /^ *-[ ]*\t/) { fail("line " i " is indented with a tab"); return }
        IND[i] = indent_of(s)
        SKIP[i] = (s ~ /^ *(#.*)?$/)
        DASH[i] = (s ~ /^ *-( |$)/)
        if (DASH[i]) {
            t = substr(s, IND[i] + 2)
            match(t, /^ */)
            AFTER[i] = IND[i] + 1 + RLENGTH
        }
    }
    for (i = 1; i <= N; i++) {
        s = L[i]
        if (s ~ /^---([ \t]|$)/) {
            if (content || marker || ended) { fail("more than one YAML document (--- at line " i ")"); return }
            if (substr(s, 4) !~ /^[ \t]*(#.*)?$/) { fail("content after --- on line " i " is not supported"); return }
            marker = 1
            SKIP[i] = 1
            BODY_START = i + 1
            continue
        }
        if (s ~ /^\.\.\.([ \t]|$)/) {
            if (!ended) BODY_END = i - 1
            ended = 1
            SKIP[i] = 1
            continue
        }
        if (SKIP[i]) continue
        if (ended) { fail("more than one YAML document (content after ... at line " i ")"); return }
        if (!marker && s ~ /^%/) { SKIP[i] = 1; continue }
        content = 1
    }
    # block scalars (| or >): their lines are opaque text, never structure
    for (i = BODY_START; i <= BODY_END; i++) {
        if (SKIP[i] || OPAQUE[i]) continue
        if (L[i] !~ /(^ *- +|: +)[|>][-+1-9]*( +#.*)?$/) continue
        t = DASH[i] ? substr(L[i], AFTER[i] + 1) : ""
        base = (DASH[i] && t !~ /^[|>]/) ? AFTER[i] : IND[i]
        for (j = i + 1; j <= BODY_END; j++) {
            if (L[j] ~ /^ *$/) continue
            if (IND[j] <= base) break
            OPAQUE[j] = 1
            SKIP[j] = 0
            DASH[j] = 0
        }
    }
}

# Path equality as the kubelet sees it: "//" collapsed, "." segments and a trailing "/"
# dropped (".." is kept: resolving it needs the file system).
function normal_path(p,   n, seg, i, out) {
    if (p !~ /^\//) return p
    n = split(p, seg, "/")
    out = ""
    for (i = 1; i <= n; i++) if (seg[i] != "" && seg[i] != ".") out = out "/" seg[i]
    return out == "" ? "/" : out
}

# Read the document on stdin and the inputs; a UTF-8 byte order mark is set aside (BOM)
# and written back by emit.
function read_input(   line) {
    N = 0
    while ((getline line) > 0) L[++N] = line
    FAILED = 0
    PORT = "6443"
    BIND = ""
    BOM = ""
    if (N && substr(L[1], 1, 3) == "\357\273\277") {
        BOM = substr(L[1], 1, 3)
        L[1] = substr(L[1], 4)
    }
    load_inputs()
    if (!FAILED) scan()
}

# A key the line scanner would not see as that key ("volumes" quoted, "volumes :") or a
# flow mapping as a sequence item ("- {mountPath: ...}"): the patch could add a second key
# of the same name (the last one wins for the kubelet) or miss a mount. Refused, by line.
function refuse_unread_keys(   i, t) {
    for (i = BODY_START; i <= BODY_END; i++) {
        if (SKIP[i] || OPAQUE[i]) continue
        t = substr(L[i], IND[i] + 1)
        while (t ~ /^- /) { t = substr(t, 3); sub(/^ +/, "", t) }
        if (t ~ /^"[^"]*" *:( |$)/ || t ~ /^'[^']*' *:( |$)/) {
            fail("line " i " has a quoted key; write the key unquoted")
            return 1
        }
        if (t ~ /^[A-Za-z0-9_.\/-]+ +:( |$)/) {
            fail("line " i " has a space before the colon of its key; write key: value")
            return 1
        }
        if (DASH[i] && t ~ /^\{/) {
            fail("line " i " is a flow mapping in a list ({...}); write it as a block mapping")
            return 1
        }
    }
    return 0
}

# A document that starts with "{" or "[" is JSON (or flow YAML): refused by name.
function refuse_json(what, first) {
    if (L[first] !~ /^ *[{[]/) return 0
    fail("JSON manifests are not supported; convert " what " to YAML (a block mapping)")
    return 1
}

function emit(   out, i, started) {
    out = ENVIRON["AUDITC_OUT"]
    started = 0
    printf "%s", BOM > out
    for (i = 1; i <= N; i++) {
        if (!(i in DEL)) {
            printf "%s%s", (started ? "\n" : ""), ((i in REP) ? REP[i] : L[i]) > out
            started = 1
        }
        if (i in AFTER_TEXT) {
            printf "%s%s", (started ? "\n" : ""), AFTER_TEXT[i] > out
            started = 1
        }
    }
    if (started && ENVIRON["AUDITC_NOEOL"] != "1") printf "\n" > out
    close(out)
    printf "port=%s\nbind=%s\n", PORT, BIND > ENVIRON["AUDITC_INFO"]
    close(ENVIRON["AUDITC_INFO"])
}

# Write the result (unless refused) and exit: 0 patched, 2 refused.
function finish() {
    if (!FAILED) emit()
    exit FAILED ? 2 : 0
}
