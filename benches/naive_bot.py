#!/usr/bin/env python3
"""The second peer of the backlog benchmark: the helpdesk bot an admin writes in an afternoon.

Python's imaplib + smtplib + sqlite3 and nothing else, the way the standard library's
documentation shows them: log in, SEARCH ALL, FETCH each mail (RFC822), look for a tracking
subject and D-numbers, look the numbers up in SQLite, answer the From address over one SMTP
connection, remember the Message-ID so a second run does not answer twice. No filing, no
threading headers, no sender check, no auto-reply or bounce detection, no quotes, no charset
care beyond what `email` does, no retries: exactly what trialdesk adds on top.

    naive_bot.py prepare DB SHIPMENTS_CSV           (before the clock: the bot's own database)
    naive_bot.py run DB IMAP_PORT SMTP_PORT USER PASSWORD FROM

`run` prints one JSON object: fetched, replied, replies per recipient ("to") and its CPU seconds.
"""

import csv
import email
import email.policy
import email.utils
import imaplib
import json
import re
import resource
import smtplib
import sqlite3
import sys
from email.message import EmailMessage

SUBJECTS = (
    "试用终端追踪请求",
    "Trial Endpoint Tracking Request",
    "トライアル用エンドポイントのトラッキング リクエスト",
    "Anfrage zur Nachverfolgung der Endpunkte der Testversion",
)
LOAN = re.compile(r"D\d{6,10}")


def prepare(db, shipments_csv):
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE shipments (loan_number TEXT PRIMARY KEY, status TEXT, carrier TEXT, "
        "tracking_number TEXT, eta TEXT)"
    )
    con.execute("CREATE TABLE answered (message_id TEXT PRIMARY KEY)")
    with open(shipments_csv, newline="", encoding="utf-8") as f:
        rows = [
            (r["loan_number"], r["status"], r["carrier"], r["tracking_number"], r["eta"])
            for r in csv.DictReader(f)
        ]
    con.executemany("INSERT INTO shipments VALUES (?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()


def run(db, imap_port, smtp_port, user, password, sender):
    con = sqlite3.connect(db)
    imap = imaplib.IMAP4("127.0.0.1", int(imap_port))
    imap.login(user, password)
    imap.select("INBOX")
    _, data = imap.search(None, "ALL")
    numbers = data[0].split()
    smtp = smtplib.SMTP("127.0.0.1", int(smtp_port))
    fetched = replied = 0
    to_counts = {}
    for num in numbers:
        _, parts = imap.fetch(num, "(RFC822)")
        raw = parts[0][1]
        fetched += 1
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        subject = str(msg.get("Subject", ""))
        if not any(s in subject for s in SUBJECTS):
            continue
        message_id = str(msg.get("Message-ID", ""))
        if con.execute("SELECT 1 FROM answered WHERE message_id = ?", (message_id,)).fetchone():
            continue
        body = msg.get_body(preferencelist=("plain", "html"))
        text = body.get_content() if body is not None else ""
        loans = list(dict.fromkeys(LOAN.findall(text + " " + subject)))
        lines = []
        for loan in loans:
            row = con.execute(
                "SELECT status, carrier, tracking_number, eta FROM shipments WHERE loan_number = ?",
                (loan,),
            ).fetchone()
            if row:
                lines.append(f"{loan}: {row[0]} ({row[1]} {row[2]}), ETA {row[3]}")
            else:
                lines.append(f"{loan}: not found")
        to = email.utils.parseaddr(str(msg.get("From", "")))[1]
        if not to:
            continue
        reply = EmailMessage()
        reply["From"] = sender
        reply["To"] = to
        reply["Subject"] = "Re: " + subject
        reply.set_content("Hello,\n\n" + "\n".join(lines or ["no loan number found"]) + "\n")
        smtp.send_message(reply)
        con.execute("INSERT INTO answered VALUES (?)", (message_id,))
        con.commit()
        replied += 1
        to_counts[to] = to_counts.get(to, 0) + 1
    smtp.quit()
    imap.logout()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"fetched": fetched, "replied": replied, "to": to_counts,
                      "cpu_s": usage.ru_utime + usage.ru_stime}))


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(*sys.argv[2:4])
    else:
        run(*sys.argv[2:8])
