#!/bin/sh
# Startup script for Amazon MWAA: the defaults of the nightly COTS batch (cots_ssm.config).
# Upload it to the environment's bucket and set it as the startup script; change the values, not
# the names. Every variable is optional: unset ones keep the defaults in cots_ssm/config.py.
export COTS_BATCH_SCHEDULE="0 2 * * *"
export COTS_BATCH_TIMEZONE="UTC"
export COTS_BATCH_TARGET_TAGS='{"Role": ["cots"]}'
export COTS_BATCH_SCRIPT="/opt/cots/bin/run_batch.sh"
export COTS_BATCH_SCRIPT_ARGUMENTS='[]'
export COTS_BATCH_EXECUTION_TIMEOUT="14400"
export COTS_BATCH_DELIVERY_TIMEOUT="600"
export COTS_BATCH_MAX_FAILED_INSTANCES="0"
# "finish" lets the other hosts end their batch once too many failed; "cancel" stops them at once.
export COTS_BATCH_FAILURE_POLICY="finish"
# A scheduled run that starts later than this after its time is skipped (e.g. unpaused mid-day).
export COTS_BATCH_START_GRACE_MINUTES="60"
export COTS_BATCH_POLL_SECONDS="300"
# export COTS_BATCH_SNS_TOPIC_ARN="arn:aws:sns:REGION:ACCOUNT:cots-batch-alerts"
