#!/bin/bash
# Guest step of restore-management-access: sshd runs and listens on PORT, and no guest firewall rule
# drops or rejects new TCP connections to it. Fixes are minimal: only rules that name the port and
# drop/reject it are removed; when a catch-all drop or a drop policy blocks the port, one accept rule
# for the port is inserted at the top. Parameters (environment): PORT (default 22), DRY_RUN (0).
# The last line of stdout is `REMEDIATION_RESULT {json}`.
# shellcheck disable=SC2317  # helpers are called through variables and traps
# @prelude

PORT="${PORT-22}"
DRY_RUN="${DRY_RUN-0}"
[[ "$PORT" =~ ^[0-9]{1,5}$ ]] || fail "PORT must be an integer 1..65535"
port=$((10#$PORT))
{ [ "$port" -ge 1 ] && [ "$port" -le 65535 ]; } || fail "PORT must be an integer 1..65535"
[[ "$DRY_RUN" =~ ^(0|1)$ ]] || fail "DRY_RUN must be 0 or 1"

# --- listening ------------------------------------------------------------------------------------------
listening() {
  if command -v ss >/dev/null; then
    ss -Hltn 2>/dev/null | awk -v p=":$port" '{ if (substr($4, length($4) - length(p) + 1) == p) f = 1 } END { exit !f }'
    return
  fi
  # /proc/net/tcp*: state 0A is LISTEN, the local port is the hex after the colon.
  local hex
  hex=$(printf '%04X' "$port")
  awk -v h="$hex" 'FNR > 1 { split($2, a, ":"); if (a[2] == h && $4 == "0A") f = 1 } END { exit !f }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

ssh_unit=""
find_ssh_unit() {
  command -v systemctl >/dev/null || return 0
  local u
  for u in ssh sshd; do
    if [ "$(systemctl show -p LoadState --value "$u" 2>/dev/null || true)" = loaded ]; then
      ssh_unit=$u
      return 0
    fi
  done
}

# --- iptables / ip6tables ---------------------------------------------------------------------------------
# Reads `iptables -S INPUT` and prints one line per rule: "<rule number> <verdict>" where verdict is
# "block-port" (drops/rejects this port by name), "block-all" (drops/rejects every new TCP connection),
# "accept-port" or "accept-all". Rules that only match loopback, established traffic or a source
# address do not decide for an operator's new connection, so they are skipped.
classify_iptables() {
  awk -v port="$port" '
    function covers(list,   n, i, parts, r) {
      n = split(list, parts, ",")
      for (i = 1; i <= n; i++) {
        if (split(parts[i], r, ":") == 2) { if (port + 0 >= r[1] + 0 && port + 0 <= r[2] + 0) return 1 }
        else if (parts[i] + 0 == port + 0) return 1
      }
      return 0
    }
    /^-A INPUT / {
      n++
      target = ""; proto = ""; dport = ""; skip = 0
      for (i = 3; i <= NF; i++) {
        if ($i == "-j") target = $(i + 1)
        else if ($i == "-p") proto = $(i + 1)
        else if ($i == "--dport" || $i == "--dports" || $i == "--destination-port") dport = $(i + 1)
        else if ($i == "-i" && $(i + 1) == "lo") skip = 1
        else if ($i == "-s" || $i == "--src-range" || $i == "--ctstate" || $i == "--state") skip = 1
        else if ($i == "!") skip = 1
      }
      if (skip) next
      if (proto != "" && proto != "tcp" && proto != "6") next
      if (dport != "" && !covers(dport)) next
      if (target == "DROP" || target == "REJECT") print n, (dport != "" ? "block-port" : "block-all")
      else if (target == "ACCEPT") print n, (dport != "" ? "accept-port" : "accept-all")
    }
    /^-P INPUT (DROP|REJECT)/ { policy_drop = 1 }
    END { if (policy_drop) print 0, "policy-drop" }
  '
}

# Whether the chain blocks the port: the first deciding rule, else the policy.
ipt_blocks() { # tool
  command -v "$1" >/dev/null || return 1
  local rules
  rules=$("$1" -w -S INPUT 2>/dev/null) || return 1
  printf '%s\n' "$rules" | classify_iptables | awk '
    $1 > 0 && !decided { decided = 1; verdict = $2 }
    $1 == 0 { policy = 1 }
    END { exit !((decided && verdict ~ /^block/) || (!decided && policy)) }'
}

fixes=""
verb=removed
[ "$DRY_RUN" = 1 ] && verb="would remove"
note_fix() { fixes="${fixes:+$fixes,}\"$1\""; }

fix_ipt() { # tool
  local tool=$1 rules numbers n
  ipt_blocks "$tool" || return 0
  rules=$("$tool" -w -S INPUT)
  # Port-specific drop/reject rules above the first accept for the port, highest number first so
  # the numbers of the others do not shift.
  numbers=$(printf '%s\n' "$rules" | classify_iptables | awk '
    $1 > 0 && $2 ~ /^accept/ { exit }
    $1 > 0 && $2 == "block-port" { print $1 }' | sort -rn)
  for n in $numbers; do
    echo "$tool: $verb INPUT rule $n: $(printf '%s\n' "$rules" | awk -v n="$n" '/^-A INPUT / && ++i == n')"
    if [ "$DRY_RUN" = 0 ]; then "$tool" -w -D INPUT "$n"; fi
    note_fix "$tool: $verb INPUT rule $n"
  done
  if [ "$DRY_RUN" = 0 ] && ipt_blocks "$tool"; then
    echo "$tool: a catch-all drop or the chain policy still blocks $port: inserting one accept rule at the top"
    "$tool" -w -I INPUT 1 -p tcp --dport "$port" -m comment --comment "restore-management-access" -j ACCEPT
    note_fix "$tool: inserted accept for tcp/$port at the top of INPUT"
  elif [ "$DRY_RUN" = 1 ] && [ -z "$numbers" ]; then
    note_fix "$tool: would insert accept for tcp/$port at the top of INPUT"
  fi
}

# --- nftables --------------------------------------------------------------------------------------------
# Prints "family table chain handle verdict" for rules of input-hook chains, verdict as above, and
# "family table chain 0 policy-drop" for input chains whose policy drops. Tables that iptables-nft
# manages are left to the iptables step.
classify_nft() {
  nft -a list ruleset 2>/dev/null | awk -v port="$port" -v skip_xt="$1" '
    function covers(s,   m, parts, i, n, r) {
      gsub(/[{},]/, " ", s); n = split(s, parts, " ")
      for (i = 1; i <= n; i++) {
        if (split(parts[i], r, "-") == 2) { if (port + 0 >= r[1] + 0 && port + 0 <= r[2] + 0) return 1 }
        else if (parts[i] == port) return 1
      }
      return 0
    }
    /^table / { fam = $2; tbl = $3; xt = (skip_xt && (fam == "ip" || fam == "ip6") && tbl == "filter") }
    /^[ \t]*chain / { ch = $2; input = 0 }
    /type filter hook input/ { input = 1; if (!xt && $0 ~ /policy drop/) print fam, tbl, ch, 0, "policy-drop" }
    /# handle [0-9]+$/ && input && !xt && ch != "" && $0 !~ /^[ \t]*(chain|type) / {
      line = $0; h = $NF
      if (line ~ /iif(name)? "?lo"?/ || line ~ /ct state/ || line ~ /saddr/ || line ~ /!=/) next
      if (line ~ /(udp|icmp|sctp) /) next
      verdict = ""
      if (line ~ / (drop|reject)( |$)/) verdict = "block"
      else if (line ~ / accept( |$)/) verdict = "accept"
      else next
      if (match(line, /dport (\{[^}]*\}|[0-9-]+)/)) {
        if (!covers(substr(line, RSTART + 6, RLENGTH - 6))) next
        print fam, tbl, ch, h, verdict "-port"
      } else if (line !~ /(dport|sport|daddr)/) print fam, tbl, ch, h, verdict "-all"
    }'
}

nft_skip_xt=0
# Captured first: `grep -q` closing a pipe early would fail the pipeline under pipefail.
if command -v iptables >/dev/null && [[ "$(iptables -V 2>/dev/null)" == *nf_tables* ]]; then nft_skip_xt=1; fi

# Blocking input chains: "family table chain".
nft_blocking_chains() {
  command -v nft >/dev/null || return 0
  classify_nft "$nft_skip_xt" | awk '
    { key = $1 " " $2 " " $3 }
    $4 == 0 { policy[key] = 1; next }
    !(key in decided) { decided[key] = $5 }
    END {
      for (k in decided) if (decided[k] ~ /^block/) print k
      for (k in policy) if (!(k in decided)) print k
    }' | sort -u
}

fix_nft() {
  local chains fam tbl ch handles h
  chains=$(nft_blocking_chains)
  [ -n "$chains" ] || return 0
  while read -r fam tbl ch; do
    handles=$(classify_nft "$nft_skip_xt" | awk -v k="$fam $tbl $ch" '
      ($1 " " $2 " " $3) != k || $4 == 0 { next }
      $5 ~ /^accept/ { exit }
      $5 == "block-port" { print $4 }')
    for h in $handles; do
      echo "nft: $verb rule handle $h from $fam $tbl $ch"
      if [ "$DRY_RUN" = 0 ]; then nft delete rule "$fam" "$tbl" "$ch" handle "$h"; fi
      note_fix "nft: $verb rule $h from $fam $tbl $ch"
    done
    if [ "$DRY_RUN" = 0 ] && [[ $'\n'"$(nft_blocking_chains)"$'\n' == *$'\n'"$fam $tbl $ch"$'\n'* ]]; then
      echo "nft: $fam $tbl $ch still blocks $port: inserting one accept rule at the top"
      nft insert rule "$fam" "$tbl" "$ch" tcp dport "$port" accept comment '"restore-management-access"'
      note_fix "nft: inserted accept for tcp/$port at the top of $fam $tbl $ch"
    fi
  done <<<"$chains"
}

# --- ufw / firewalld (front ends: ask them, so their saved configuration stays in charge) -------------------
ufw_active() { command -v ufw >/dev/null && [[ "$(ufw status 2>/dev/null)" == *"Status: active"* ]]; }
ufw_blocks() {
  ufw_active || return 1
  ufw status 2>/dev/null | awk -v p="$port" '
    $1 == p || $1 == p "/tcp" { if (!d) { d = 1; v = $2 } }
    END { exit !(d ? (v == "DENY" || v == "REJECT") : 0) }' && return 0
  [[ "$(ufw status verbose 2>/dev/null)" =~ Default:\ (deny|reject)\ \(incoming\) ]] &&
    ! ufw status 2>/dev/null | awk -v p="$port" '($1 == p || $1 == p "/tcp") && $2 == "ALLOW" { f = 1 } END { exit !f }'
}
fix_ufw() {
  ufw_blocks || return 0
  echo "ufw: inserting 'allow $port/tcp' as rule 1"
  if [ "$DRY_RUN" = 0 ]; then ufw insert 1 allow "$port/tcp"; fi
  note_fix "ufw: inserted allow $port/tcp as rule 1"
}

firewalld_blocks() {
  command -v firewall-cmd >/dev/null && firewall-cmd --state >/dev/null 2>&1 || return 1
  ! firewall-cmd --query-port="$port/tcp" >/dev/null 2>&1 &&
    ! { [ "$port" = 22 ] && firewall-cmd --query-service=ssh >/dev/null 2>&1; }
}
fix_firewalld() {
  firewalld_blocks || return 0
  echo "firewalld: opening $port/tcp in the default zone (runtime and permanent)"
  if [ "$DRY_RUN" = 0 ]; then
    firewall-cmd --add-port="$port/tcp" >/dev/null
    firewall-cmd --permanent --add-port="$port/tcp" >/dev/null
  fi
  note_fix "firewalld: opened $port/tcp in the default zone"
}

firewall_blocks() {
  ipt_blocks iptables || ipt_blocks ip6tables || [ -n "$(nft_blocking_chains)" ] || ufw_blocks || firewalld_blocks
}

# --- run --------------------------------------------------------------------------------------------------
find_ssh_unit
before_listening=$(bool listening)
before_blocks=$(bool firewall_blocks)
echo "port $port: listening=$before_listening firewallBlocks=$before_blocks sshUnit=${ssh_unit:-none}"
before="{\"listening\":$before_listening,\"firewallBlocks\":$before_blocks}"

service_note=""
if [ "$before_listening" = false ]; then
  if [ -z "$ssh_unit" ]; then
    service_note="no ssh service unit found (systemctl missing or no ssh/sshd unit): start sshd by hand"
    echo "$service_note"
  elif [ "$DRY_RUN" = 1 ]; then
    service_note="would start and enable $ssh_unit"
    echo "dry run: $service_note"
  else
    echo "starting and enabling $ssh_unit"
    systemctl enable "$ssh_unit" >/dev/null 2>&1 || echo "warning: could not enable $ssh_unit"
    if systemctl restart "$ssh_unit"; then
      service_note="started $ssh_unit"
    else
      service_note="could not start $ssh_unit"
    fi
  fi
fi

if [ "$before_blocks" = true ]; then
  fix_ipt iptables
  fix_ipt ip6tables
  fix_nft
  fix_ufw
  fix_firewalld
fi

after_listening=$(bool listening)
after_blocks=$(bool firewall_blocks)
echo "after: listening=$after_listening firewallBlocks=$after_blocks"
after="{\"listening\":$after_listening,\"firewallBlocks\":$after_blocks}"

if [ "$before_listening" = true ] && [ "$before_blocks" = false ]; then
  status=already-ok
elif [ "$DRY_RUN" = 0 ] && [ "$after_listening" = true ] && [ "$after_blocks" = false ]; then
  status=fixed
else
  status=not-fixed
fi
dry=false
[ "$DRY_RUN" = 1 ] && dry=true
emit "{\"status\":\"$status\",\"port\":$port,\"dryRun\":$dry,\"sshUnit\":\"$ssh_unit\",\"service\":\"$service_note\",\"firewallFixes\":[$fixes],\"before\":$before,\"after\":$after}"
case "$status" in fixed | already-ok) exit 0 ;; *) exit 1 ;; esac
