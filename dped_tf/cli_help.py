"""What `dped-tf` says about its commands before any of them runs: the usage line, the
flags with plain defaults and the required ones marked, an example, deprecated
spellings, verbosity. Light: no TensorFlow, no numpy.

A command module may set `USAGE` (its positional inputs and required flags), `EXAMPLE`
(one command line), `REQUIRED` (flag names), `RENAMED` ({old flag name: new name}, old
spellings that still work with a one-line deprecation) and `check(fv, argv)` (the checks
that need no TensorFlow, run before it loads).
"""

import re
import textwrap

from dped_tf.errors import DpedError

WIDTH = 88


def _plain(value):
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, (list, tuple)):
    return ",".join(_plain(v) for v in value) or "none"
  return str(value)


def _metavar(flag):
  values = getattr(flag.parser, "enum_values", None) or getattr(
      getattr(flag.parser, "_enum_parser", None), "enum_values", None)
  if values and len("|".join(values)) <= 48:
    return "|".join(values)
  return {"int": "N", "float": "X"}.get(flag.flag_type(), flag.name.upper())


def _flag_text(flag, required):
  head = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}={_metavar(flag)}"
  if required:
    note = "required"
  elif flag.default in (None, ""):
    note = None
  else:
    note = f"default: {_plain(flag.default)}"
  if flag.flag_type().startswith("multi"):
    note = "repeatable" + (f"; {note}" if note else "")
  text = re.sub(r"^<[^>]*>: ", "", flag.help) + (f" ({note})" if note else "")
  return "\n".join([f"  {head}"] + textwrap.wrap(text, WIDTH, initial_indent=" " * 6,
                                                   subsequent_indent=" " * 6))


def usage_line(name, module):
  """`usage: dped-tf NAME <positional inputs and required flags> [--flags]`."""
  synopsis = getattr(module, "USAGE", "")
  return f"usage: dped-tf {name} {synopsis + ' ' if synopsis else ''}[--flags]"


def command_help(name, module, summary, fv):
  """`dped-tf NAME --help`: usage, what it does, an example, then every flag."""
  required = set(getattr(module, "REQUIRED", ()))
  lines = [usage_line(name, module), "", summary]
  if getattr(module, "EXAMPLE", None):
    lines += ["", "example:", f"  {module.EXAMPLE}"]
  lines += ["", "flags (required ones marked):" if required else "flags:"]
  lines += [_flag_text(fv[flag], flag in required) for flag in fv]
  lines += ["  -v, --verbosity=N", "      Show TensorFlow's and absl's notices too (-v: "
            "INFO, 1: DEBUG; default: warnings and errors only)."]
  return "\n".join(lines)


def missing_required(name, module, fv):
  """DpedError naming the first required flag left out, with the usage line."""
  for flag in getattr(module, "REQUIRED", ()):
    if fv[flag].value in (None, []):
      raise DpedError(f"--{flag} is required; {usage_line(name, module)}")


def rename_deprecated(args, renamed):
  """(args with old flag spellings replaced, one note per old spelling used). `--no` of a
  boolean is renamed too; nothing after `--` is touched (Beam's options)."""
  out, notes = [], []
  for i, arg in enumerate(args):
    if arg == "--":
      return out + args[i:], notes
    name, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
    negation = ""
    if name not in renamed and name.startswith("no") and name[2:] in renamed:
      negation, name = "no", name[2:]
    if name not in renamed:
      out.append(arg)
      continue
    out.append(f"--{negation}{renamed[name]}{sep}{value}")
    note = f"--{negation}{name} is deprecated; use --{negation}{renamed[name]}"
    if note not in notes:
      notes.append(note)
  return out, notes


def take_verbosity(args):
  """(args without -v/--verbose/--verbosity[=N], absl verbosity: -1 unless given)."""
  rest, level, i = [], -1, 0
  while i < len(args):
    arg = args[i]
    if arg == "--":
      rest += args[i:]
      break
    if arg in ("-v", "--verbose"):
      level = max(level, 0)
    elif arg.startswith("--verbosity="):
      level = _level(arg.split("=", 1)[1])
    elif arg == "--verbosity" and i + 1 < len(args):
      level, i = _level(args[i + 1]), i + 1
    else:
      rest.append(arg)
    i += 1
  return rest, level


def _level(text):
  try:
    return int(text)
  except ValueError:
    raise DpedError(f"--verbosity={text}: give a number (0: INFO, 1: DEBUG)") from None
