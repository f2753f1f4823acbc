#!/bin/bash
# Guest step of restore-management-access: sshd runs and listens on PORT, and the guest firewall lets
# new TCP connections to it in from every management source. It never widens access beyond those
# sources: it removes no rule of the admin's and adds, only for a source the firewall blocks, one
# accept rule restricted to that source and port, on top (iptables, nftables, ufw, firewalld). An
# existing accept restricted to a range that covers a source already lets it in.
# Parameters (environment): PORT (default 22), MANAGEMENT_SOURCES (comma-separated IPv4 addresses
# or CIDRs, the NSG step's sources made concrete), DRY_RUN (0).
# The last line of stdout is `REMEDIATION_RESULT {json}`.
# shellcheck disable=SC2317  # helpers are called through variables and traps
# @prelude

PORT="${PORT-22}"
MANAGEMENT_SOURCES="${MANAGEMENT_SOURCES-}"
DRY_RUN="${DRY_RUN-0}"
[[ "$PORT" =~ ^[0-9]{1,5}$ ]] || fail "PORT must be an integer 1..65535"
port=$((10#$PORT))
{ [ "$port" -ge 1 ] && [ "$port" -le 65535 ]; } || fail "PORT must be an integer 1..65535"
[[ "$DRY_RUN" =~ ^(0|1)$ ]] || fail "DRY_RUN must be 0 or 1"

# --- management sources: IPv4 addresses and CIDRs only, never everything -------------------------------
octet='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
cidr_re="^$octet\.$octet\.$octet\.$octet(/(3[0-2]|[12]?[0-9]))?\$"
sources=()
if [ -n "$MANAGEMENT_SOURCES" ]; then
  [ "${#MANAGEMENT_SOURCES}" -le 1000 ] || fail "MANAGEMENT_SOURCES is too long"
  IFS=, read -r -a given <<<"$MANAGEMENT_SOURCES"
  for source in "${given[@]}"; do
    [[ "$source" =~ $cidr_re ]] || fail "MANAGEMENT_SOURCES must be IPv4 addresses or CIDRs (a service tag such as VirtualNetwork has no addresses here)"
    [[ "$source" == */* ]] || source="$source/32"
    [ "${source#*/}" -ge 8 ] || fail "refusing management source $source: wider than a /8 is not a management source"
    sources+=("$source")
  done
fi
[ "${#sources[@]}" -le 20 ] || fail "MANAGEMENT_SOURCES holds more than 20 sources"

ip_to_int() {
  local a b c d
  IFS=. read -r a b c d <<<"$1"
  echo $(((a << 24) | (b << 16) | (c << 8) | d))
}
# Whether every address of the CIDR $2 lies inside the CIDR $1 (a bare address is a /32; "*" is all).
covers() {
  local outer=$1 inner=$2 outer_bits inner_bits mask
  [ "$outer" = "*" ] && return 0
  [ "$inner" = "*" ] && return 1
  [[ "$outer" == */* ]] || outer="$outer/32"
  [[ "$inner" == */* ]] || inner="$inner/32"
  [[ "$outer" =~ $cidr_re ]] && [[ "$inner" =~ $cidr_re ]] || return 1
  outer_bits=${outer#*/}
  inner_bits=${inner#*/}
  [ "$outer_bits" -le "$inner_bits" ] || return 1
  mask=$(((0xFFFFFFFF << (32 - outer_bits)) & 0xFFFFFFFF))
  [ $(($(ip_to_int "${outer%/*}") & mask)) -eq $(($(ip_to_int "${inner%/*}") & mask)) ]
}
# Two ranges share an address exactly when one holds the other. Anything that is no IPv4 range
# (a set name, an IPv6 prefix) is taken to overlap: a drop rule is assumed to hit, an accept to miss.
overlaps() { covers "$1" "$2" || covers "$2" "$1" || ! [[ "${1%/*}" =~ ^[0-9.]+$ && "${2%/*}" =~ ^[0-9.]+$ ]]; }
# Whether a comma-separated list of ports and ranges (22, 20:30, 20-30, "*") holds the port.
port_in() {
  local list=$1 item
  [ "$list" = "*" ] && return 0
  IFS=, read -r -a items <<<"$list"
  for item in "${items[@]}"; do
    item=${item//-/:}
    if [[ "$item" =~ ^([0-9]+):([0-9]+)$ ]]; then
      [ "$port" -ge "${BASH_REMATCH[1]}" ] && [ "$port" -le "${BASH_REMATCH[2]}" ] && return 0
    elif [ "$item" = "$port" ]; then
      return 0
    fi
  done
  return 1
}
# The verdict of an ordered list of rules for one source: each rule "verdict saddrs dports exact",
# verdict accept|block|policy-block, saddrs and dports comma lists or "*", exact 0 when the rule has
# qualifiers this script does not evaluate (then an accept does not count and a block does).
first_verdict() { # source < rules
  local source=$1 verdict saddrs dports exact saddr hit
  while read -r verdict saddrs dports exact; do
    [ -n "$verdict" ] || continue
    if [ "$verdict" = policy-block ]; then
      echo block
      return
    fi
    port_in "$dports" || continue
    hit=false
    IFS=, read -r -a list <<<"$saddrs"
    for saddr in "${list[@]}"; do
      if [ "$verdict" = accept ] && [ "$exact" = 1 ] && covers "$saddr" "$source"; then hit=true; fi
      if [ "$verdict" = block ] && overlaps "$saddr" "$source"; then hit=true; fi
    done
    if [ "$hit" = true ]; then
      echo "$verdict"
      return
    fi
  done
  echo accept
}

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

# --- iptables --------------------------------------------------------------------------------------------
# `iptables -S INPUT` as rules for first_verdict. Rules that match loopback or a connection state do
# not decide for an operator's new connection; jumps to other chains are not followed.
ipt_rules() {
  "$@" 2>/dev/null | awk '
    /^-P INPUT (DROP|REJECT)/ { policy = 1; next }
    /^-A INPUT / {
      target = ""; proto = ""; dport = "*"; saddr = "*"; exact = 1; skip = 0
      for (i = 3; i <= NF; i++) {
        if ($i == "-j") target = $(i + 1)
        else if ($i == "-p") proto = $(i + 1)
        else if ($i == "--dport" || $i == "--dports" || $i == "--destination-port") dport = $(i + 1)
        else if ($i == "-s" || $i == "--source") saddr = $(i + 1)
        else if ($i == "-i" && $(i + 1) == "lo") skip = 1
        else if ($i == "--ctstate" || $i == "--state") skip = 1
        else if ($i == "!" || $i == "-d" || $i == "-i" || $i == "--src-range" || $i == "--match-set") exact = 0
        else if ($i == "--comment") i++
      }
      if (skip || (proto != "" && proto != "tcp" && proto != "6")) next
      if (target == "ACCEPT") print "accept", saddr, dport, exact
      else if (target == "DROP" || target == "REJECT") print "block", saddr, dport, exact
    }
    END { if (policy) print "policy-block * * 1" }'
}
ipt_blocked_sources() { # sources...
  local source
  command -v iptables >/dev/null || return 0
  iptables -w -S INPUT >/dev/null 2>&1 || return 0
  for source in "$@"; do
    [ "$(ipt_rules iptables -w -S INPUT | first_verdict "$source")" = block ] && echo "$source"
  done
  return 0
}
fix_ipt() {
  local source
  for source in $(ipt_blocked_sources "${sources[@]}"); do
    echo "iptables: $adds accept for $source to tcp/$port at the top of INPUT"
    if [ "$DRY_RUN" = 0 ]; then
      iptables -w -I INPUT 1 -s "$source" -p tcp --dport "$port" -m comment --comment "restore-management-access" -j ACCEPT
    fi
    note_fix "iptables: $adds accept for $source to tcp/$port at the top of INPUT"
  done
}

# --- nftables --------------------------------------------------------------------------------------------
# Input-hook base chains of the ip and inet families as "family table chain" lines, then their rules
# as "family table chain | verdict saddrs dports exact". Tables iptables-nft manages are left to the
# iptables step. A packet must pass every base chain, so each chain is judged on its own.
nft_rules() {
  nft -a list ruleset 2>/dev/null | awk -v skip_xt="$nft_skip_xt" '
    function list(s) { gsub(/[{} ]/, "", s); return s }
    /^table / { fam = $2; tbl = $3; xt = (skip_xt && fam == "ip" && tbl == "filter"); ch = ""; next }
    /^[ \t]*chain / { ch = $2; input = 0; next }
    /type filter hook input/ {
      input = (fam == "ip" || fam == "inet") && !xt
      if (input) { print "chain", fam, tbl, ch; if ($0 ~ /policy drop/) policy[fam " " tbl " " ch] = 1 }
      next
    }
    /# handle [0-9]+$/ && input && ch != "" {
      line = $0
      sub(/ comment "[^"]*"/, "", line)
      if (line ~ /iif(name)? "?lo"?/ || line ~ /ct state/ || line ~ /ip6 /) next
      if (line ~ /(udp|icmp|sctp) / || line ~ /(jump|goto) /) next
      verdict = ""
      if (line ~ / (drop|reject)( |$)/) verdict = "block"
      else if (line ~ / accept( |$)/) verdict = "accept"
      else next
      exact = (line ~ /!=|daddr|iif|@/) ? 0 : 1
      saddr = "*"; dport = "*"
      if (match(line, /ip saddr (\{[^}]*\}|[^ ]+)/)) saddr = list(substr(line, RSTART + 9, RLENGTH - 9))
      if (match(line, /dport (\{[^}]*\}|[^ ]+)/)) dport = list(substr(line, RSTART + 6, RLENGTH - 6))
      print "rule", fam, tbl, ch, verdict, saddr, dport, exact
    }
    # A chain policy decides only after every rule of the chain.
    END { for (key in policy) print "rule", key, "policy-block * * 1" }'
}
nft_skip_xt=0
# Captured first: `grep -q` closing a pipe early would fail the pipeline under pipefail.
if command -v iptables >/dev/null && [[ "$(iptables -V 2>/dev/null)" == *nf_tables* ]]; then nft_skip_xt=1; fi

# "family table chain source" for every chain that blocks a source ("0.0.0.0/0" asks about anyone).
nft_blocked() { # sources...
  command -v nft >/dev/null || return 0
  local all fam tbl ch source
  all=$(nft_rules)
  while read -r _ fam tbl ch; do
    for source in "$@"; do
      if [ "$(awk -v k="$fam $tbl $ch" '$1 == "rule" && ($2 " " $3 " " $4) == k { $1 = $2 = $3 = $4 = ""; print }' <<<"$all" | first_verdict "$source")" = block ]; then
        echo "$fam $tbl $ch $source"
      fi
    done
  done < <(grep '^chain ' <<<"$all")
  return 0
}
fix_nft() {
  local fam tbl ch source
  while read -r fam tbl ch source; do
    [ -n "$source" ] || continue
    echo "nft: $adds accept for $source to tcp/$port at the top of $fam $tbl $ch"
    if [ "$DRY_RUN" = 0 ]; then
      nft insert rule "$fam" "$tbl" "$ch" ip saddr "$source" tcp dport "$port" accept comment '"restore-management-access"'
    fi
    note_fix "nft: $adds accept for $source to tcp/$port at the top of $fam $tbl $ch"
  done <<<"$(nft_blocked "${sources[@]}")"
}

# --- ufw / firewalld (front ends: ask them, so their saved configuration stays in charge) -------------------
ufw_active() { command -v ufw >/dev/null && [[ "$(ufw status 2>/dev/null)" == *"Status: active"* ]]; }
# `ufw status` rules (IPv4 only) as rules for first_verdict, then the default incoming policy.
ufw_rules() {
  ufw status 2>/dev/null | awk '
    /\(v6\)/ || !seen { if ($1 == "--") seen = 1; next }
    {
      to = $1; action = $2; from = ($3 == "IN") ? $4 : $3
      if ($3 == "IN" && NF > 4 || $3 != "IN" && NF > 3) exact = 0; else exact = 1
      sub(/\/tcp$/, "", to)
      if (to ~ /\/(udp)$/) next
      if (to == "Anywhere") to = "*"
      if (from == "Anywhere") from = "*"
      if (action == "ALLOW" || action == "LIMIT") print "accept", from, to, exact
      else if (action == "DENY" || action == "REJECT") print "block", from, to, exact
    }'
  [[ "$(ufw status verbose 2>/dev/null)" =~ Default:\ (deny|reject)\ \(incoming\) ]] && echo "policy-block * * 1"
  return 0
}
ufw_blocked_sources() {
  local source
  ufw_active || return 0
  for source in "$@"; do
    [ "$(ufw_rules | first_verdict "$source")" = block ] && echo "$source"
  done
  return 0
}
fix_ufw() {
  local source
  for source in $(ufw_blocked_sources "${sources[@]}"); do
    echo "ufw: $adds 'allow proto tcp from $source to any port $port' as rule 1"
    if [ "$DRY_RUN" = 0 ]; then
      if [[ "$(ufw status numbered 2>/dev/null)" == *"[ 1]"* ]]; then
        ufw insert 1 allow proto tcp from "$source" to any port "$port" comment restore-management-access
      else
        ufw allow proto tcp from "$source" to any port "$port" comment restore-management-access
      fi
    fi
    note_fix "ufw: $adds allow from $source to tcp/$port as rule 1"
  done
}

firewalld_running() { command -v firewall-cmd >/dev/null && firewall-cmd --state >/dev/null 2>&1; }
firewalld_rule() { echo "rule family=\"ipv4\" source address=\"$1\" port port=\"$port\" protocol=\"tcp\" accept"; }
# The default zone lets a source in when it opens the port (or ssh on 22) to everyone, or when a rich
# rule accepts the port from a range that covers the source.
firewalld_blocked_sources() {
  local source rule address
  firewalld_running || return 0
  firewall-cmd --query-port="$port/tcp" >/dev/null 2>&1 && return 0
  [ "$port" = 22 ] && firewall-cmd --query-service=ssh >/dev/null 2>&1 && return 0
  for source in "$@"; do
    address=""
    while IFS= read -r rule; do
      [[ "$rule" =~ ^rule\ family=\"ipv4\"\ source\ address=\"([0-9./]+)\"\ (port\ port=\"$port\"\ protocol=\"tcp\"|service\ name=\"ssh\")\ accept$ ]] || continue
      [[ "${BASH_REMATCH[2]}" == service* ]] && [ "$port" != 22 ] && continue
      covers "${BASH_REMATCH[1]}" "$source" && address=${BASH_REMATCH[1]}
    done < <(firewall-cmd --list-rich-rules 2>/dev/null)
    [ -n "$address" ] || echo "$source"
  done
  return 0
}
fix_firewalld() {
  local source
  for source in $(firewalld_blocked_sources "${sources[@]}"); do
    echo "firewalld: $adds rich rule accepting tcp/$port from $source in the default zone (runtime and permanent)"
    if [ "$DRY_RUN" = 0 ]; then
      firewall-cmd --add-rich-rule="$(firewalld_rule "$source")" >/dev/null
      firewall-cmd --permanent --add-rich-rule="$(firewalld_rule "$source")" >/dev/null
    fi
    note_fix "firewalld: $adds accept for $source to tcp/$port"
  done
}

fixes=""
adds=inserted
[ "$DRY_RUN" = 1 ] && adds="would insert"
note_fix() { fixes="${fixes:+$fixes,}\"$(json_escape "$1")\""; }

# Blocks when a management source cannot get in; without sources, when anyone may be kept out.
firewall_blocks() {
  local probe=("${sources[@]}")
  [ "${#probe[@]}" -gt 0 ] || probe=(0.0.0.0/0)
  [ -n "$(ipt_blocked_sources "${probe[@]}")" ] || [ -n "$(nft_blocked "${probe[@]}")" ] || [ -n "$(ufw_blocked_sources "${probe[@]}")" ] ||
    [ -n "$(firewalld_blocked_sources "${probe[@]}")" ]
}

# --- run --------------------------------------------------------------------------------------------------
find_ssh_unit
before_listening=$(bool listening)
before_blocks=$(bool firewall_blocks)
echo "port $port: listening=$before_listening firewallBlocks=$before_blocks sshUnit=${ssh_unit:-none} sources=${sources[*]:-none}"
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

firewall_note=""
if [ "$before_blocks" = true ]; then
  if [ "${#sources[@]}" = 0 ]; then
    firewall_note="the firewall blocks tcp/$port and no concrete management source was given: nothing is opened (an unrestricted accept is never added)"
    echo "$firewall_note"
  else
    fix_ipt
    fix_nft
    fix_ufw
    fix_firewalld
  fi
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
source_list=""
for source in "${sources[@]}"; do source_list="${source_list:+$source_list,}\"$source\""; done
emit "{\"status\":\"$status\",\"port\":$port,\"dryRun\":$dry,\"sshUnit\":\"$ssh_unit\",\"service\":\"$(json_escape "$service_note")\",\"firewall\":\"$(json_escape "$firewall_note")\",\"managementSources\":[$source_list],\"firewallFixes\":[$fixes],\"before\":$before,\"after\":$after}"
case "$status" in fixed | already-ok) exit 0 ;; *) exit 1 ;; esac
