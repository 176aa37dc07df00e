# compose/test/lib.sh: what the compose tests share (sourced by run, ha
# and chaos): messages, polled waits, a Docker engine (installed and
# started if none answers) and the compose command; for ha and chaos the
# images, container ids, health, metrics and etcdctl. The caller sets
# repo, work (a temp dir), started (date +%s), prefix (its name in
# messages) and dockerd_pid= (set here when this starts dockerd; the
# caller stops it); for build_images also build, image and etcd_image.

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

#  --- 2. the stack's pieces (run by ha and chaos) --------------------------

#  Builds the two images FROM scratch from $build/bin: $image and
#  $etcd_image (the caller names them, and removes them at the end).
build_images () {
    [ -x "$build/bin/edgeplane" ] || fail "$build/bin/edgeplane is missing: build first (scripts/test)"
    EDGEPLANE_BUILD_DIR=$build "$repo/compose/build-image" "$image" > "$work/image.log" 2>&1 \
        || { cat "$work/image.log"; fail "compose/build-image"; }
    "$repo/compose/build-image" --etcd "$etcd_image" > "$work/etcd-image.log" 2>&1 \
        || { cat "$work/etcd-image.log"; fail "compose/build-image --etcd"; }
    say "images $image and $etcd_image ($(docker image inspect -f '{{.Size}}' "$etcd_image") bytes)"
}

#  A free 127.0.0.1 port from $1 up.
free_port () {
    local port=$1
    while (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; do
        port=$(( port + 1 ))
    done
    echo "$port"
}

#  Container ids, looked up once: docker-compose takes a second or more a
#  call on a loaded machine, and a container keeps its id across restarts.
#  A scaled service (the terminators) has several, separated by spaces.
declare -A cid
remember () {
    local service
    for service in "$@"; do
        cid[$service]=$(echo $(compose ps -q "$service"))
        [ -n "${cid[$service]}" ] || fail "no container for $service"
    done
}

#  Every container of the services given healthy (one docker call); prints
#  those that are not.
all_healthy () {
    local service ids=()
    for service in "$@"; do
        ids+=(${cid[$service]})
    done
    ! docker inspect -f '{{.Name}} {{.State.Health.Status}}' "${ids[@]}" | grep -v ' healthy$'
}

#  A service's metric, read inside its container ($3, default its first):
#  the sum of its series (a gauge without labels: its value). The image
#  has no curl, `edgeplane health` prints the page it gets.
metric () {
    local port container=${3:-${cid[$1]%% *}}
    case $1 in
        model*) port=9101 ;; terminators) port=9102 ;; reaper) port=9103 ;; watchdog) port=9104 ;; bus*) port=9105 ;;
    esac
    docker exec "$container" edgeplane health "http://127.0.0.1:$port/metrics" 2> /dev/null \
        | awk -v name="$2" '$1 == name || index($1, name "{") == 1 { sum += $2; seen = 1 }
                            END { if (seen) printf "%.0f\n", sum }'
}

#  Container $1 restarted once more than $2 times, and healthy.
back_healthy () {
    [ "$(docker inspect -f '{{.RestartCount}} {{.State.Health.Status}}' "$1")" = "$(( $2 + 1 )) healthy" ]
}

#  etcdctl inside member $1 (the image has no shell), with its own bundle.
ctl () {
    local member=$1; shift
    docker exec "${cid[$member]}" etcdctl --command-timeout=3s \
        --endpoints=https://127.0.0.1:2379 --cacert=/keys/etcd/ca.crt \
        --cert="/keys/etcd/$member.crt" --key="/keys/etcd/$member.key" "$@"
}

#  Members member $1 (default etcd0) lists as started.
started_members () { ctl "${1:-etcd0}" member list | grep -c ', started, '; }
