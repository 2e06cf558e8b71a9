# Prints what zsh's completion system offers for $WORDS typed and then TAB, one candidate a line: the
# completion script ($SCRIPT) runs inside a real interactive zsh on a pseudo-terminal (zsh/zpty),
# with compadd wrapped to print what it is given.
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT= ; RPROMPT= "
zpty -w z "autoload -U compinit; compinit -u -D"
zpty -w z "source $SCRIPT"
zpty -w z 'compadd () { if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi; typeset -a __hits; builtin compadd -A __hits "$@"; local h; for h in $__hits; do print -r -- "HIT""::$h"; done; }'
zpty -w z 'comptest () { zle -I; zle complete-word; print -r -- "END""::"; zle send-break }'
zpty -w z 'zle -N comptest; bindkey "^I" comptest'
zpty -n -w z "$WORDS"$'\t'
local line
while zpty -r z line; do
  line=${line//$'\r'/}
  [[ $line == *END::* ]] && break
  [[ $line == *HIT::* ]] && print -r -- "${line##*HIT::}"
done
zpty -d z
