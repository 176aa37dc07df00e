# The etcd image of the highly available profile: Debian's etcd and
# etcdctl and the libraries they load, on an empty base, gathered by
# `compose/build-image --etcd`. It runs as the same unprivileged user as
# the edgeplane image (10001), so both read the bundles `edgeplane pki`
# writes in the keys volume; its data directory is mode 0700, as etcd
# requires.
FROM scratch
COPY rootfs/ /
COPY --chown=10001:10001 owned/ /
ENV PATH=/usr/local/bin
USER 10001:10001
WORKDIR /data
CMD ["etcd", "--version"]
