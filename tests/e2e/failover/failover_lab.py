"""The failover lab: Asterisk 22, the API model, two servers of the production image, dnsmasq and HAProxy.

``FailoverLab.run(Plan(...))`` places one bounded load of calls through one mechanism,
injects the plan's fault into server agi-a, and returns the counts as a dict.  The tests
in this folder run short plans; bench/failover.py runs the long ones and prints the table.
"""
import re
import statistics
import time
from collections import namedtuple
from pathlib import Path

import lab_failover
from lab_build import ensure_lab_image, say
from lab_lock import LAB_LOCK
from lab_peers import ApiModel
from lab_run import AGENT, QUIET_LOGGING, AsteriskLab, text_problems

E2E_DIR = Path(__file__).resolve().parent.parent
UNIQUEID = re.compile(r"\buniqueid=(\d+)\.")

# fault: "kill" (SIGKILL) or "term" (SIGTERM, a drain); fault_at and restart_at are seconds
# after the first call; the victim is always the first server, agi-a.
Plan = namedtuple("Plan", "mechanism fault calls rate hold_ms api_delay fault_at restart_at")


class FailoverLab:
    def __init__(self, run_dir, token, quiet=False):
        self.run_dir = Path(run_dir)
        self.token = token
        self.quiet = quiet
        self.asterisk = self.model = None
        self.servers, self.daemons = [], []
        self.dns = None

    def start(self):
        from image_lab import build_image  # tests/e2e/fastagi_image

        LAB_LOCK.acquire()  # released by stop()
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            engine, lab_image = ensure_lab_image("sid")
            server_image = build_image(engine)
            self.model = ApiModel(self.run_dir, self.token).start()
            token_file = self.run_dir / "synthflow-token"
            token_file.write_text(self.token + "\n")
            token_file.chmod(0o644)  # the image's non-root user reads it, as a mounted Secret
            env = {"SYNTHFLOW_API_URL": self.model.base_url, "SYNTHFLOW_API_TOKEN_FILE": "/run/secrets/synthflow-token",
                   "SYNTHFLOW_MODEL_ID": "lab-model", "SYNTHFLOW_WORKSPACE_ID": "lab-workspace",
                   "SYNTHFLOW_AGENT_NUMBER": AGENT, "SYNTHFLOW_SIP_HOST": "127.0.0.1", "SYNTHFLOW_MODE": "dial"}
            self.dns = lab_failover.dnsmasq(self.run_dir).start()
            self.daemons = [self.dns]
            self.asterisk = AsteriskLab(engine, lab_image, self.run_dir)
            say("starting Asterisk 22 with two FastAGI servers of the production image")
            self.asterisk.start({}, mounts=[(E2E_DIR, "/etc/asterisk/e2e"),
                                            (lab_failover.resolv_conf(self.run_dir), "/etc/resolv.conf")])
            for command in QUIET_LOGGING if self.quiet else ():
                self.asterisk.cli(command)
            for name, port, metrics_port in lab_failover.SERVERS:
                server = lab_failover.Server(engine, server_image, name, port, metrics_port, env, token_file)
                self.servers.append(server.start())
            # HAProxy counts a server UP from its start until checks fail: no warm-up needed.
            self.daemons.append(lab_failover.haproxy(self.run_dir).start())
        except BaseException:
            self.stop()
            raise
        return self

    def run(self, plan, label):
        folder = self.run_dir / label
        victim = self.servers[0]
        self.model.reset()
        if plan.api_delay:
            self.model.script(*[{"kind": "delay", "seconds": plan.api_delay}] * plan.calls)
        marks = [len(s.logs()) for s in self.servers]
        dns_mark = len(self.dns.text())
        budget = int(plan.calls / plan.rate + (plan.hold_ms / 1000.0) + plan.api_delay + 40)
        say("%s: %d calls at %g/s via %s, %s agi-a at %gs" % (label, plan.calls, plan.rate, plan.mechanism,
                                                             plan.fault or "no fault", plan.fault_at or 0))
        agent, humans, customer = lab_failover.place_calls(folder, plan.mechanism, plan.calls, plan.rate,
                                                            plan.hold_ms, budget)
        started = time.time()
        events = {}
        try:
            if plan.fault:
                time.sleep(max(0.0, started + plan.fault_at - time.time()))
                events["in_flight_at_fault"] = victim.metric("synthflow_agi_calls_in_flight")
                events["fault_at"] = time.time()
                victim.signal("KILL" if plan.fault == "kill" else "TERM")
                events["exit_code"] = victim.wait_exited(45)
                events["exited_at"] = time.time()
                time.sleep(max(0.0, started + plan.restart_at - time.time()))
                restart_mark = len(victim.logs())
                victim.restart()
                events["restarted_at"] = time.time()
            customer_exit = customer.wait(budget + 10)
        finally:
            for peer in (customer, agent, humans):
                peer.stop()
        result = self._tally(plan, customer, agent, humans, events)
        result.update(label=label, plan=plan._asdict(), customer_exit=customer_exit, started=started)
        logs = [s.logs() for s in self.servers]
        for server, text in zip(self.servers, logs):
            (folder / ("%s.log" % server.name)).write_text(text)
        result["server_calls"] = {s.name: len(_statuses(text[mark:])) for s, text, mark in zip(self.servers, logs, marks)}
        if plan.fault:
            after = _statuses(logs[0][restart_mark:])
            result["victim_calls_after_restart"] = len(after)
            # A call's uniqueid starts with the second its channel was made: when the first call
            # after the restart reached Asterisk, to the second.
            made = [int(m.group(1)) for m in map(UNIQUEID.search, after) if m]
            result["victim_first_call_s"] = max(0, min(made) - int(events["restarted_at"])) if made else None
            result["victim_log_before_restart"] = logs[0][marks[0]:restart_mark]
        result["problems"] = [p for s, text in zip(self.servers, logs) for p in text_problems(text, s.name, [self.token])]
        if plan.mechanism == "hagi":
            result["srv_queries"] = self.dns.text()[dns_mark:].count("query[SRV] _agi._tcp.fastagi.failover.test")
        return result

    def _tally(self, plan, customer, agent, humans, events):
        result = lab_failover.counts(customer.text("actions.log"), agent.text("actions.log"),
                                     humans.text("actions.log"), plan.calls)
        result.update(events)
        fault_at = events.get("fault_at")
        acked = lab_failover.ack_times(customer.text("actions.log"))
        latency = lab_failover.handoff_ms(customer.text("actions.log"), agent.text("actions.log"))
        before = [ms for call, ms in latency.items() if fault_at is None or acked[call] < fault_at]
        result["handoff_ms_before"] = _summary(before)
        if fault_at is not None:
            new = [call for call, at in acked.items() if at >= fault_at]
            affected = [acked[c] - fault_at for c in new if c not in result["calls"]["agent"]]
            result["new_calls"] = len(new)
            result["new_calls_affected"] = len(affected)
            result["affected_window_s"] = round(max(affected), 3) if affected else 0.0
            soon = [latency[c] for c in new if c in latency and acked[c] - fault_at < 5.0]
            result["handoff_ms_after_fault_5s"] = _summary(soon)
            old = [c for c, at in acked.items() if at < fault_at]
            result["old_calls_to_humans"] = sum(1 for c in old if c in result["calls"]["humans"])
        return result

    def stop(self):
        try:
            for server in self.servers:
                server.remove()
            for daemon in self.daemons:
                daemon.stop()
            if self.asterisk:
                self.asterisk.stop()
            if self.model:
                self.model.stop()
        finally:
            LAB_LOCK.release()


def _statuses(log_text):
    return [line for line in log_text.splitlines() if " status=" in line and "summary" not in line]


def _summary(values):
    if not values:
        return {"n": 0}
    values = sorted(values)
    return {"n": len(values), "p50": round(statistics.median(values), 1), "max": round(values[-1], 1)}
