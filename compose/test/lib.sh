# compose/test/lib.sh: what the compose tests share (sourced by run and
# ha): messages, polled waits, a Docker engine (installed and started if
# none answers) and the compose command. The caller sets repo, work (a
# temp dir), started (date +%s), prefix (its name in messages) and
# dockerd_pid= (set here when this starts dockerd; the caller stops it).

say () { echo "$prefix [$(( $(date +%s) - started ))s]: $*"; }
fail () { echo "$prefix [$(( $(date +%s) - started ))s]: FAILED: $*" >&2; exit 1; }
skip () { say "SKIP: $*"; }

as_root () {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

#  Runs the check (a command) every half second until it succeeds or the
#  deadline passes: a polled condition, never a sleep standing for one.
wait_for () {
    local what=$1 seconds=$2
    shift 2
    local deadline=$(( $(date +%s) + seconds ))
    until "$@" > "$work/last-check" 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            fail "$what: not within ${seconds}s (last check said: $(tail -c 400 "$work/last-check"))"
        fi
        sleep 0.5
    done
}

#  --- 1. Docker ---------------------------------------------------------

docker_answers () { docker info > /dev/null 2>&1; }

ensure_docker () {
    if ! command -v docker > /dev/null || ! { command -v docker-compose > /dev/null || docker compose version > /dev/null 2>&1; }; then
        say "installing docker.io and docker-compose"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q > "$work/apt.log" 2>&1
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io docker-compose >> "$work/apt.log" 2>&1 \
            || { tail -20 "$work/apt.log"; fail "apt-get install docker.io docker-compose"; }
    fi
    docker_answers && return 0
    if [ -S /var/run/docker.sock ] && as_root docker info > /dev/null 2>&1; then
        fail "the Docker engine answers only as root: run this as root, or join the docker group"
    fi
    say "no Docker engine answers: starting dockerd"
    #  dockerd picks its storage driver (overlay2, else fuse-overlayfs, else
    #  vfs: a CI machine that is itself a container gets one that works) and
    #  reads /etc/docker/daemon.json if there is one.
    as_root dockerd > "$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    local deadline=$(( $(date +%s) + 60 ))
    until docker_answers; do
        if ! kill -0 "$dockerd_pid" 2> /dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
            tail -20 "$work/dockerd.log" >&2
            fail "dockerd did not come up"
        fi
        sleep 0.5
    done
}

#  Healthy (docker's healthcheck) containers of service, at least want
#  (default 1); the caller defines compose ().
healthy () {
    local service=$1 want=${2:-1} count=0 id
    for id in $(compose ps -q "$service"); do
        [ "$(docker inspect -f '{{.State.Health.Status}}' "$id")" = healthy ] && count=$(( count + 1 ))
    done
    echo "$service: $count healthy of $want"
    [ "$count" -ge "$want" ]
}

#  Sets compose_cmd: EDGEPLANE_COMPOSE, else docker-compose, else docker compose.
pick_compose () {
    if [ -n "${EDGEPLANE_COMPOSE:-}" ]; then
        read -r -a compose_cmd <<< "$EDGEPLANE_COMPOSE"
    elif command -v docker-compose > /dev/null; then
        compose_cmd=(docker-compose)
    else
        compose_cmd=(docker compose)
    fi
    say "$("${compose_cmd[@]}" version 2>&1 | head -1); engine $(docker version -f '{{.Server.Version}}')"
}
