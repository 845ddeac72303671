#!/usr/bin/env bash
# A stand-in for a COTS batch job with no API: index a set of documents for a list of keywords
# and write a report. Run it on the emulator's instances through SSM Run Command, e.g.
#   bash /path/to/cots_batch.sh --keywords invoice,refund --report report.tsv --duration 2
#
# Options (all optional):
#   --keywords a,b,c     keywords to count, comma separated (default: invoice,payment,refund)
#   --input DIR          documents to index; by default ./corpus, created with sample documents
#   --report FILE        where to write the tab-separated report (default: ./report.tsv)
#   --duration SECONDS   time the work takes, spread over the documents (default: 2)
#   --fail-on ID         fail with exit code 3 when running on instance ID ($AWS_SSM_INSTANCE_ID)
#   --exit-code N        end with exit code N after writing the report (default: 0)
# Progress and the summary go to stdout, errors to stderr.
set -euo pipefail

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
  local code="$1"
  shift
  printf 'cots_batch: error: %s\n' "$*" >&2
  exit "$code"
}

keywords="invoice,payment,refund"
input=""
report="report.tsv"
duration="2"
fail_on=""
exit_code="0"

while [ "$#" -gt 0 ]; do
  case "$1" in
    --keywords | --input | --report | --duration | --fail-on | --exit-code)
      [ "$#" -ge 2 ] || die 2 "option $1 needs a value"
      case "$1" in
        --keywords) keywords="$2" ;;
        --input) input="$2" ;;
        --report) report="$2" ;;
        --duration) duration="$2" ;;
        --fail-on) fail_on="$2" ;;
        --exit-code) exit_code="$2" ;;
      esac
      shift 2
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die 2 "unknown argument: $1 (see --help)" ;;
  esac
done

[[ "$duration" =~ ^[0-9]+([.][0-9]+)?$ ]] || die 2 "--duration must be a number of seconds, got '$duration'"
[[ "$exit_code" =~ ^[0-9]+$ ]] && [ "$exit_code" -le 255 ] || die 2 "--exit-code must be 0..255, got '$exit_code'"

IFS=',' read -r -a keyword_list <<< "$keywords"
clean_keywords=()
for keyword in "${keyword_list[@]}"; do
  [ -n "$keyword" ] && clean_keywords+=("$keyword")
done
[ "${#clean_keywords[@]}" -gt 0 ] || die 2 "--keywords needs at least one keyword"

instance="${AWS_SSM_INSTANCE_ID:-local}"

make_corpus() {
  local dir="$1"
  mkdir -p -- "$dir"
  printf '%s\n' "Invoice 1001 was paid by card." "The payment cleared; no refund is due." > "$dir/doc-01.txt"
  printf '%s\n' "Refund requested for invoice 1002." "Payment reversed after the refund." > "$dir/doc-02.txt"
  printf '%s\n' "Quarterly summary: 12 invoices, 11 payments." "One refund pending." > "$dir/doc-03.txt"
  printf '%s\n' "No keywords in this memo about the coffee machine." > "$dir/doc-04.txt"
  printf '%s\n' "Payment terms: 30 days from the invoice date." "Late payment fees apply." > "$dir/doc-05.txt"
}

if [ -z "$input" ]; then
  input="corpus"
  if [ ! -d "$input" ]; then
    make_corpus "$input"
    printf '[%s] created a sample corpus in %s\n' "$instance" "$PWD/$input"
  fi
fi
[ -d "$input" ] || die 4 "input directory '$input' does not exist"

documents=()
while IFS= read -r -d '' document; do
  documents+=("$document")
done < <(find "$input" -maxdepth 1 -type f -print0 | sort -z)
[ "${#documents[@]}" -gt 0 ] || die 4 "input directory '$input' has no documents"

pause=$(awk -v total="$duration" -v n="${#documents[@]}" 'BEGIN { printf "%.3f", total / n }')
report_dir=$(dirname -- "$report")
mkdir -p -- "$report_dir"
tmp_report="$report.partial"

printf '[%s] indexing %d documents for %d keywords\n' "$instance" "${#documents[@]}" "${#clean_keywords[@]}"
printf 'document\tkeyword\tcount\n' > "$tmp_report"
declare -A totals=()
index=0
for document in "${documents[@]}"; do
  index=$((index + 1))
  sleep "$pause"
  for keyword in "${clean_keywords[@]}"; do
    count=$( (grep -o -i -F -e "$keyword" -- "$document" || true) | wc -l | tr -d ' ')
    totals["$keyword"]=$(( ${totals["$keyword"]:-0} + count ))
    printf '%s\t%s\t%s\n' "$(basename -- "$document")" "$keyword" "$count" >> "$tmp_report"
  done
  printf '[%s] %d/%d %s\n' "$instance" "$index" "${#documents[@]}" "$(basename -- "$document")"
  if [ -n "$fail_on" ] && [ "$instance" = "$fail_on" ]; then
    die 3 "instance $instance is configured to fail (--fail-on) after $(basename -- "$document"); report not written"
  fi
done
mv -- "$tmp_report" "$report"

printf '[%s] report written to %s\n' "$instance" "$report"
printf 'SUMMARY instance=%s documents=%d' "$instance" "${#documents[@]}"
for keyword in "${clean_keywords[@]}"; do
  printf ' %s=%d' "$keyword" "${totals["$keyword"]}"
done
printf '\n'

if [ "$exit_code" -ne 0 ]; then
  printf 'cots_batch: exiting with code %s as asked (--exit-code)\n' "$exit_code" >&2
fi
exit "$exit_code"
