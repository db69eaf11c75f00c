"""`make mutate`, child side: report which mutated functions a subprocess reached.

mutmut learns which tests reach which function by recording calls in the pytest
process. The contract tests run the program as a subprocess (the classic AGI, the
FastAGI server, the CLI), so those calls would be lost and the contract tests never
chosen to judge a mutant. During mutmut's statistics run (MUTANT_UNDER_TEST=stats)
this module, imported at interpreter start through PYTHONPATH, makes the child
append each function it reaches to a file that the pytest plugin beside it reads.
Outside that run it does nothing.
"""
import os


def _install():
    folder = os.environ.get("MUTMUT_CHILD_HITS_DIR")
    if os.environ.get("MUTANT_UNDER_TEST") != "stats" or not folder:
        return
    import threading

    try:
        import mutmut.mutation.trampoline as trampoline
    except ImportError:
        return
    path = os.path.join(folder, "%d.hits" % os.getpid())
    seen = set()
    lock = threading.Lock()

    def record_hit_to_file(name, caller=None):
        with lock:
            if name in seen:
                return
            seen.add(name)
            with open(path, "a") as out:
                out.write(name + "\n")

    trampoline.record_trampoline_hit = record_hit_to_file


_install()
