"""A device running jobs through the AWS IoT Device SDK v2 for Python
(awsiotsdk), with its request-response Jobs client (IotJobsClientV2, as
AWS's current jobs sample uses it), pointed at Weir.

Usage: jobs_device.py --port P --ca ca.pem --cert c.pem --key k.pem --thing T
                      --create-cmd '<JSON argv>' [--first J1] [--second J2] [--mqtt5]

The job J1 (default fw-1) must already be queued for T; --create-cmd makes
J2 (default fw-2). Over mTLS as thing T, it:
1. opens the notify-next and job-executions-changed streams;
2. lists its pending jobs (J1 queued);
3. starts the next one (J1, in progress, with its document);
4. updates it with a stale expected version (VersionMismatch), then to
   SUCCEEDED, and sees notify-next say nothing is next;
5. runs --create-cmd (the operator making job J2) and sees J2 on
   both streams, document included;
6. describes J2, fails it with status details, then tries to change it
   again (InvalidStateTransition);
7. describes a job that does not exist (ResourceNotFound) and lists its
   pending jobs again (none).

Prints one JSON line with what each step answered. Exits non-zero when a
step times out.
"""

import argparse
import json
import subprocess
import sys

from awsiot import ServiceStreamOptions, iotjobs

from sdk_device import TIMEOUT, add_args, client_options, close, connect, open_stream, rejected

parser = argparse.ArgumentParser()
add_args(parser)
parser.add_argument("--create-cmd", required=True)
parser.add_argument("--first", default="fw-1")
parser.add_argument("--second", default="fw-2")
args = parser.parse_args()
thing = args.thing

conn = connect(args)
jobs = iotjobs.IotJobsClientV2(conn, client_options())
next_stream, next_events = open_stream(
    jobs.create_next_job_execution_changed_stream,
    iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name=thing),
    ServiceStreamOptions,
)
changed_stream, changed_events = open_stream(
    jobs.create_job_executions_changed_stream,
    iotjobs.JobExecutionsChangedSubscriptionRequest(thing_name=thing),
    ServiceStreamOptions,
)


def ids(summaries):
    return [s.job_id for s in summaries or []]


def pending():
    r = jobs.get_pending_job_executions(
        iotjobs.GetPendingJobExecutionsRequest(thing_name=thing)
    ).result(TIMEOUT)
    return {"queued": ids(r.queued_jobs), "in_progress": ids(r.in_progress_jobs)}


out = {"pending_before": pending()}

r = jobs.start_next_pending_job_execution(
    iotjobs.StartNextPendingJobExecutionRequest(
        thing_name=thing, status_details={"step": "downloading"}, step_timeout_in_minutes=10
    )
).result(TIMEOUT)
e = r.execution
out["started"] = {
    "job_id": e.job_id,
    "status": e.status,
    "version": e.version_number,
    "document": e.job_document,
    "status_details": e.status_details,
    "started": e.started_at is not None,
}

out["stale"] = rejected(
    jobs.update_job_execution(
        iotjobs.UpdateJobExecutionRequest(
            thing_name=thing, job_id=args.first, status="SUCCEEDED", expected_version=1
        )
    )
)
r = jobs.update_job_execution(
    iotjobs.UpdateJobExecutionRequest(
        thing_name=thing,
        job_id=args.first,
        status="SUCCEEDED",
        expected_version=e.version_number,
        include_job_execution_state=True,
        status_details={"step": "done"},
    )
).result(TIMEOUT)
out["succeeded"] = {
    "status": r.execution_state.status,
    "version": r.execution_state.version_number,
    "status_details": r.execution_state.status_details,
}
event = next_events.get(timeout=TIMEOUT)
out["next_after_done"] = None if event.execution is None else event.execution.job_id
event = changed_events.get(timeout=TIMEOUT)
out["changed_after_done"] = {k: ids(v) for k, v in (event.jobs or {}).items()}

created = subprocess.run(json.loads(args.create_cmd), capture_output=True, text=True)
if created.returncode != 0:
    sys.exit(f"create failed: {created.stderr}")
event = next_events.get(timeout=TIMEOUT)
out["notified_next"] = {
    "job_id": event.execution.job_id,
    "status": event.execution.status,
    "document": event.execution.job_document,
}
event = changed_events.get(timeout=TIMEOUT)
out["notified"] = {k: ids(v) for k, v in (event.jobs or {}).items()}

r = jobs.describe_job_execution(
    iotjobs.DescribeJobExecutionRequest(thing_name=thing, job_id=args.second)
).result(TIMEOUT)
out["described"] = {"status": r.execution.status, "document": r.execution.job_document}

jobs.update_job_execution(
    iotjobs.UpdateJobExecutionRequest(thing_name=thing, job_id=args.second, status="IN_PROGRESS")
).result(TIMEOUT)
r = jobs.update_job_execution(
    iotjobs.UpdateJobExecutionRequest(
        thing_name=thing,
        job_id=args.second,
        status="FAILED",
        status_details={"reason": "checksum mismatch"},
        include_job_execution_state=True,
        include_job_document=True,
    )
).result(TIMEOUT)
out["failed"] = {
    "status": r.execution_state.status,
    "status_details": r.execution_state.status_details,
    "document": r.job_document,
}
out["after_terminal"] = rejected(
    jobs.update_job_execution(
        iotjobs.UpdateJobExecutionRequest(thing_name=thing, job_id=args.second, status="SUCCEEDED")
    )
)
out["missing"] = rejected(
    jobs.describe_job_execution(
        iotjobs.DescribeJobExecutionRequest(thing_name=thing, job_id="no-such-job")
    )
)
out["pending_after"] = pending()

del next_stream, changed_stream
close(conn, args)
print(json.dumps(out))
