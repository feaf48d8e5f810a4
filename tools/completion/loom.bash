# bash completion for the loom program: source it, or install it as
# /usr/share/bash-completion/completions/loom. The options come from `loom help COMMAND` itself,
# so they never fall behind the program.
_loom() {
  local cur prev cmd
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  cmd=${COMP_WORDS[1]}
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "$(loom help 2>/dev/null | awk '/^Commands:/ {on=1; next} on && /^  [a-z]/ {print $1}') help --version --help" -- "$cur"))
    return
  fi
  if [ "$cmd" = help ]; then
    COMPREPLY=($(compgen -W "$(loom help 2>/dev/null | awk '/^Commands:/ {on=1; next} on && /^  [a-z]/ {print $1}')" -- "$cur"))
    return
  fi
  case $prev in
    --optimizer) COMPREPLY=($(compgen -W "sgd adam adamw rmsprop adagrad" -- "$cur")); return ;;
    --balance) COMPREPLY=($(compgen -W "static uncertainty gradnorm dwa rlw pcgrad mgda cagrad nash_mtl" -- "$cur")); return ;;
    --rankdir) COMPREPLY=($(compgen -W "TB LR BT RL" -- "$cur")); return ;;
    --epochs|--batch-size|--seed|--threads|--lr|--validation-split|--dpi|--samples|--verbose|--progress-seconds|--diagnostics-every) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(loom help "$cmd" 2>/dev/null | grep -oE '^  (-[a-z], )?--[a-z-]+' | grep -oE -- '--[a-z-]+') --help" -- "$cur"))
    return
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _loom loom
