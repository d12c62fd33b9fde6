#!/usr/bin/env python3
"""kazoo over TLS (`use_ssl=True`, ZooKeeper's secureClientPort style)
against a server speaking TLS on its ZooKeeper port.

    python3 tests/compat/kazoo_tls.py --hosts 127.0.0.1:PORT --ca CA.pem \
        --cert CLIENT.pem --key CLIENT-KEY.pem --subject 'CN=...,O=...'

Checks, each printed `PASS <name>` or `FAIL <name>: ...`, then `all N checks
passed` or `F of N checks failed`:
- `tls_session`: a client with the CA and its own certificate creates,
  reads and deletes nodes;
- `x509_acl`: a node whose ACL names the client certificate's subject
  (`x509:SUBJECT`) is readable by that client and refused (NoAuth) to a
  TLS client without a certificate;
- `plain_refused`: a plain-text client on the TLS port never gets a
  session, and the TLS clients carry on.
"""

import argparse
import sys
import traceback
import uuid

try:
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError
    from kazoo.handlers.threading import KazooTimeoutError
    from kazoo.security import make_acl
except ImportError as e:  # pragma: no cover - the message is the point
    sys.stderr.write("kazoo_tls.py: kazoo is not importable (%s)\n" % e)
    sys.exit(2)


class CheckFailed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def client(args, cert=True, ssl=True):
    kw = dict(hosts=args.hosts, timeout=10)
    if ssl:
        kw.update(use_ssl=True, ca=args.ca, verify_certs=True, check_hostname=False)
        if cert:
            kw.update(certfile=args.cert, keyfile=args.key)
    return KazooClient(**kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--subject", required=True)
    args = ap.parse_args()
    root = "/tls-%s" % uuid.uuid4().hex[:12]
    results = []

    def check(name, fn):
        try:
            fn()
            results.append(True)
            print("PASS %s" % name, flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            results.append(False)
            print("FAIL %s: %s" % (name, e), flush=True)
            traceback.print_exc(file=sys.stderr)

    mine = client(args)
    mine.start(timeout=15)

    def tls_session():
        mine.create(root + "/a", b"over tls", makepath=True)
        data, stat = mine.get(root + "/a")
        expect(data == b"over tls", "read back %r" % data)
        mine.delete(root + "/a")
        expect(mine.exists(root + "/a") is None, "deleted")

    def x509_acl():
        acl = [make_acl("x509", args.subject, all=True)]
        mine.create(root + "/mine", b"secret", acl=acl)
        data, _ = mine.get(root + "/mine")
        expect(data == b"secret", "the certificate's owner reads it")
        other = client(args, cert=False)
        other.start(timeout=15)
        try:
            try:
                other.get(root + "/mine")
                raise CheckFailed("a client without the certificate read it")
            except NoAuthError:
                pass
            expect(other.exists(root + "/mine") is not None, "exists needs no permission")
        finally:
            other.stop()
            other.close()

    def plain_refused():
        plain = client(args, ssl=False)
        try:
            plain.start(timeout=3)
            raise CheckFailed("a plain-text client got a session on the TLS port")
        except KazooTimeoutError:
            pass
        finally:
            plain.stop()
            plain.close()
        expect(mine.exists(root) is not None, "the TLS client carries on")

    check("tls_session", tls_session)
    check("x509_acl", x509_acl)
    check("plain_refused", plain_refused)
    try:
        mine.delete(root, recursive=True)
    finally:
        mine.stop()
        mine.close()
    failed = results.count(False)
    if failed:
        print("%d of %d checks failed" % (failed, len(results)))
        sys.exit(1)
    print("all %d checks passed" % len(results))


if __name__ == "__main__":
    main()
