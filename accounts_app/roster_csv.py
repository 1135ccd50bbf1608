"""Reading roster CSV files, and writing CSV that spreadsheets cannot mistake for formulas.

Parsing is pure: bytes in, rows and line-numbered errors out. Nothing here touches the database;
`services/rosters.py` compares the rows with the roster and applies them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from accounts_app.choices import CourseRole
from accounts_app.models import normalize_email

REQUIRED_COLUMNS = ("email",)
KNOWN_COLUMNS = ("email", "name", "role")
NAME_MAX_LENGTH = 200
ROLE_ALIASES = {
    "instructor": CourseRole.INSTRUCTOR,
    "teacher": CourseRole.INSTRUCTOR,
    "ta": CourseRole.TA,
    "teaching assistant": CourseRole.TA,
    "student": CourseRole.STUDENT,
    "": CourseRole.STUDENT,
}
# A cell starting with one of these is run as a formula by Excel, LibreOffice and Sheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class RosterRow:
    line: int
    email: str
    name: str
    role: CourseRole


@dataclass(frozen=True)
class RosterError:
    line: int | None  # None for problems with the file as a whole
    message: str

    def __str__(self) -> str:
        return f"Line {self.line}: {self.message}" if self.line else self.message


@dataclass
class ParsedRoster:
    rows: list[RosterRow] = field(default_factory=list)
    errors: list[RosterError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def decode_roster(data: bytes) -> str:
    """UTF-8 text with any byte-order mark removed; ValueError names the problem otherwise."""
    if len(data) > settings.PORTAL_ROSTER_MAX_BYTES:
        limit_mb = settings.PORTAL_ROSTER_MAX_BYTES // (1024 * 1024)
        raise ValueError(f"The file is larger than {limit_mb} MB. Split the roster into parts.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"The file is not UTF-8 text (byte {error.start + 1} is invalid). "
            "In your spreadsheet, save it as “CSV UTF-8”."
        ) from None


def parse_roster(text: str) -> ParsedRoster:
    """Rows and errors of a roster CSV: a header line naming email, name and role, then one
    person a line. Commas or semicolons separate the columns; blank lines are ignored."""
    result = ParsedRoster()
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()
    header_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        result.errors.append(RosterError(None, "The file is empty."))
        return result

    delimiter = ";" if lines[header_index].count(";") > lines[header_index].count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = _read_header(reader, result)
    if columns is None:
        return result

    first_line_of_email: dict[str, int] = {}
    people = 0
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        people += 1
        if people > settings.PORTAL_ROSTER_MAX_ROWS:
            result.errors.append(
                RosterError(
                    None,
                    f"The file has more than {settings.PORTAL_ROSTER_MAX_ROWS:,} people. Split the roster into parts.",
                )
            )
            return result
        row = _read_row(line, cells, columns, result)
        if row is None:
            continue
        if row.email in first_line_of_email:
            result.errors.append(
                RosterError(
                    line,
                    f"{row.email} is already on line {first_line_of_email[row.email]}. List each person once.",
                )
            )
            continue
        first_line_of_email[row.email] = line
        result.rows.append(row)

    if not result.rows and not result.errors:
        result.errors.append(RosterError(None, "The file has a header but nobody in it."))
    return result


def _read_header(reader, result: ParsedRoster) -> dict[str, int] | None:
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        names = [cell.strip().lower() for cell in cells]
        missing = [column for column in REQUIRED_COLUMNS if column not in names]
        if missing:
            result.errors.append(
                RosterError(
                    reader.line_num,
                    "The first line must be a header naming the columns "
                    f"{', '.join(KNOWN_COLUMNS)} (found: {', '.join(cells) or 'nothing'}).",
                )
            )
            return None
        return {name: names.index(name) for name in KNOWN_COLUMNS if name in names}
    return None


def _read_row(line: int, cells: list[str], columns: dict[str, int], result: ParsedRoster) -> RosterRow | None:
    def cell(column: str) -> str:
        index = columns.get(column)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    errors_before = len(result.errors)
    raw_email = cell("email")
    email = normalize_email(raw_email)
    try:
        validate_email(email)
    except ValidationError:
        what = f"“{raw_email}” is not a valid email address." if raw_email else "The email is empty."
        result.errors.append(RosterError(line, what))

    name = cell("name")
    if len(name) > NAME_MAX_LENGTH:
        result.errors.append(RosterError(line, f"The name is longer than {NAME_MAX_LENGTH} characters."))

    raw_role = cell("role")
    role = ROLE_ALIASES.get(raw_role.lower())
    if role is None:
        result.errors.append(RosterError(line, f"Unknown role “{raw_role}”. Use instructor, ta or student."))

    if len(result.errors) > errors_before:
        return None
    return RosterRow(line=line, email=email, name=name, role=role)


def spreadsheet_safe(value: object) -> str:
    """The cell as text, with a leading apostrophe where a spreadsheet would run it as a formula.
    Numbers stay numbers: a negative amount is not a formula."""
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def write_csv(header: list[str], rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([[spreadsheet_safe(value) for value in row] for row in rows])
    return buffer.getvalue()
