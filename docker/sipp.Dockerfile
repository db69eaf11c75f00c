# SIPp for the compose lab (Debian's package is "sip-tester").
ARG SUITE=sid
FROM debian:${SUITE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends sip-tester \
 && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["sipp"]
