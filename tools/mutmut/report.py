"""Print the outcome of `make mutate`: survivors per file, and the total on the last line.

Reads ``mutmut results --all true`` (one ``module.function__mutmut_N: status`` a line),
run from the repository root after ``mutmut run``.
"""
import collections
import subprocess
import sys
from pathlib import Path

MUTMUT = str(Path(sys.executable).with_name("mutmut"))


def main() -> int:
    out = subprocess.run([MUTMUT, "results", "--all", "true"], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    status_count = collections.Counter()
    survivors = collections.defaultdict(list)
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if not sep:
            continue
        status_count[status] += 1
        if status == "survived":
            module = name.split(".x", 1)[0].rsplit(".", 1)[-1] if ".x" in name else name
            survivors[module].append(name)
    for module in sorted(survivors):
        print("%s: %d surviving" % (module, len(survivors[module])))
        for name in survivors[module]:
            print("    " + name)
    print("statuses: " + ", ".join("%s=%d" % kv for kv in sorted(status_count.items())))
    print("surviving mutants: %d" % len([n for names in survivors.values() for n in names]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
