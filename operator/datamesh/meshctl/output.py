"""``meshctl validate``'s output formats: text for people, JSON for tools, JUnit for CI
test reports, GitHub workflow commands for annotations on the pull request's diff.
Every format that prints a closing line prints the same one (``summary``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TextIO
from xml.sax.saxutils import escape, quoteattr

from datamesh.meshctl.checks import Report

FORMATS = ("text", "json", "junit", "github")


def summary(report: Report) -> str:
    """The closing line: verdict and counts."""
    s = report.to_json()["summary"]
    return (
        f"{'OK' if report.ok else 'FAILED'}: {s['products']} products, "
        f"{len(report.policies)} policies, {s['errors']} errors, "
        f"{s['blocking']} blocking violations, {s['warnings']} warnings"
    )


def text(report: Report, out: TextIO) -> None:
    for p in report.other:
        print(f"{p.file}:{p.line}: error: {p.message}", file=out)
    for pol in report.policies:
        for e in pol.errors:
            print(f"{e.file}:{e.line}: error: {e.object} {e.field}: {e.message}", file=out)
        for w in pol.warnings:
            print(f"{w.file}:{w.line}: warning: {w.object} {w.field}: {w.message}", file=out)
    for prod in report.products:
        for e in prod.errors:
            where = " ".join(x for x in (e.object, e.field) if x)
            print(f"{e.file}:{e.line}: error: {where}: {e.message}", file=out)
        for v in prod.violations:
            level = "error" if v.enforcement == "block" else v.enforcement
            print(
                f"{prod.file}:{prod.line}: {level}: DataProduct/{prod.namespace}/{prod.name}"
                f" violates {v.policy}/{v.rule} ({v.severity}): {v.message}",
                file=out,
            )
    print(summary(report), file=out)


def as_json(report: Report, out: TextIO) -> None:
    json.dump(report.to_json(), out, indent=2)
    print(file=out)


def _github_escape(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github(report: Report, out: TextIO) -> None:
    def line(level: str, file: str, lineno: int, title: str, message: str) -> None:
        print(
            f"::{level} file={file},line={lineno},title={_github_escape(title)}::"
            f"{_github_escape(message)}",
            file=out,
        )

    for p in [
        *report.other,
        *(e for x in report.policies for e in x.errors),
        *(e for x in report.products for e in x.errors),
    ]:
        line("error", p.file, p.line, p.field or "meshctl", f"{p.object}: {p.message}")
    for w in (w for x in report.policies for w in x.warnings):
        line("warning", w.file, w.line, w.field, f"{w.object}: {w.message}")
    for prod in report.products:
        for v in prod.violations:
            level = {"block": "error", "warn": "warning"}.get(str(v.enforcement), "notice")
            line(level, prod.file, prod.line, f"{v.policy}/{v.rule}", v.message)
    print(summary(report), file=out)


def junit(report: Report, out: TextIO) -> None:
    cases = []
    for prod in report.products:
        failures = [f"{e.field}: {e.message}" for e in prod.errors] + [
            f"{v.policy}/{v.rule}: {v.message}" for v in prod.violations if v.enforcement == "block"
        ]
        cases.append((prod.file, f"{prod.namespace}/{prod.name}", failures))
    for pol in report.policies:
        cases.append((pol.file, pol.name, [f"{e.field}: {e.message}" for e in pol.errors]))
    for p in report.other:
        cases.append((p.file, p.file, [p.message]))
    failed = sum(1 for *_, f in cases if f)
    print('<?xml version="1.0" encoding="UTF-8"?>', file=out)
    print(
        f'<testsuites><testsuite name="meshctl validate" tests="{len(cases)}" failures="{failed}">',
        file=out,
    )
    for file, name, failures in cases:
        print(f"  <testcase classname={quoteattr(file)} name={quoteattr(name)}>", file=out)
        if failures:
            body = "\n".join(failures)
            print(
                f"    <failure message={quoteattr(failures[0])}>{escape(body)}</failure>", file=out
            )
        print("  </testcase>", file=out)
    print("</testsuite></testsuites>", file=out)


WRITERS: dict[str, Callable[[Report, TextIO], None]] = {
    "text": text,
    "json": as_json,
    "junit": junit,
    "github": github,
}


def silence_stdout() -> None:
    """After the reader closed the pipe (``meshctl validate | head``): point standard
    output at /dev/null, so that flushing it at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
