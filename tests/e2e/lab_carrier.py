"""A second Asterisk in the lab container, acting as a REFER-following carrier.

It runs beside the lab's Asterisk (the PBX) with its own configuration folder
(tests/e2e/refer_drops_headers/carrier, mounted read-only), CLI socket, astdb and log
folder, and listens on 127.0.0.1:15064.  The container's end ends it; stop() ends it
earlier.  One carrier per lab: start() is idempotent.
"""
import time

CARRIER_PORT = 15064
CARRIER_CONF = "/etc/asterisk/e2e/refer_drops_headers/carrier/asterisk.conf"
CARRIER_DIRS = ("/var/log/asterisk/carrier", "/var/spool/asterisk-carrier", "/var/run/asterisk-carrier",
                "/var/lib/asterisk-carrier")


class Carrier:
    def __init__(self, lab):
        self.lab = lab  # lab_run.AsteriskLab

    def cli(self, command, check=True):
        return self.lab.exec_(["asterisk", "-C", CARRIER_CONF, "-rx", command], check=check)

    def running(self):
        """Booted, and really the carrier: a config that fails to name its own run folder would
        put this CLI on the PBX's socket."""
        proc = self.cli("core waitfullybooted", check=False)
        if proc.returncode != 0 or "fully booted" not in proc.stdout:
            return False
        settings = self.cli("core show settings", check=False).stdout
        if "/var/run/asterisk-carrier" not in settings:
            raise RuntimeError("%s reached an Asterisk that is not the carrier:\n%s" % (CARRIER_CONF, settings[-1500:]))
        return True

    def start(self, timeout=30):
        from lab_run import wait_for_port

        if self.running():
            return self
        script = ("mkdir -p %s && exec asterisk -C %s -f -n </dev/null >/dev/null "
                  "2>>/var/log/asterisk/carrier/stderr.log &") % (" ".join(CARRIER_DIRS), CARRIER_CONF)
        self.lab.exec_(["sh", "-c", script])
        deadline = time.time() + timeout
        while not self.running():
            if time.time() > deadline:
                raise RuntimeError("the carrier Asterisk did not boot within %ss:\n%s" % (
                    timeout, self.log()[-3000:]))
            time.sleep(0.3)
        wait_for_port(CARRIER_PORT, "udp", 10, "the carrier Asterisk")
        return self

    def log(self):
        return self.lab.read("carrier/full")
