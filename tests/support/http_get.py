"""GET on loopback as a health checker asks it: no proxy from the environment, the answer closed."""
import urllib.error
import urllib.request


def get(port, path):
    """(HTTP code, body) of GET http://127.0.0.1:port/path."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open("http://127.0.0.1:%d%s" % (port, path), timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as answer:
        # An HTTPError holds the open answer; Python 3.14 warns when it is left to the collector.
        with answer:
            return answer.code, answer.read().decode()
