#!/usr/bin/env python3
"""Smoke test of a running Roster: readiness, a discovery query, and a signed-in enroll.

    deploy/smoke.py BASE_URL TOKEN

BASE_URL is e.g. http://127.0.0.1:8080; TOKEN a bearer token of a student (the demo data's).
Exits non-zero, saying what failed.
"""

import json
import sys
import urllib.error
import urllib.request


def post(base, query, variables=None, token=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{base}/graphql", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def main(base, token):
    with urllib.request.urlopen(f"{base}/readyz", timeout=10) as response:
        assert response.status == 200, f"/readyz answered {response.status}"
    print("ok: /readyz")

    courses = post(base, "{ courses(first: 50) { totalCount edges { node { name "
                   "sections { id isFull } } } } }")
    assert "errors" not in courses, courses
    total = courses["data"]["courses"]["totalCount"]
    assert total > 0, f"discovery found no courses: {courses}"
    print(f"ok: discovery lists {total} courses")

    try:
        refused = post(base, "{ me { id } }", token="not-a-token")
        code = refused["errors"][0]["extensions"]["code"]
        assert code == "UNAUTHENTICATED", f"a bad token was accepted: {refused}"
    except urllib.error.HTTPError as refused:
        assert refused.code == 401, f"a bad token got {refused.code}"
    me = post(base, "{ me { email role } }", token=token)
    assert me.get("data", {}).get("me", {}).get("role") == "STUDENT", me

    enroll = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }"
    refusals = []
    for edge in courses["data"]["courses"]["edges"]:
        for section in edge["node"]["sections"]:
            if section["isFull"]:
                continue
            answer = post(base, enroll, {"s": section["id"]}, token=token)
            enrolled = (answer.get("data") or {}).get("enroll")
            if enrolled:
                print(f"ok: {me['data']['me']['email']} enrolled in {edge['node']['name']}: "
                      f"{enrolled['status']}")
                return 0
            refusals.append(answer["errors"][0]["extensions"].get("code"))
    raise AssertionError(f"no enroll succeeded; refusals: {refusals}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        sys.exit(main(sys.argv[1].rstrip("/"), sys.argv[2]))
    except (AssertionError, OSError, KeyError, ValueError) as failure:
        sys.exit(f"FAILED: {failure!r}")
