"""The roster CSV parser and the spreadsheet-safe CSV writer: pure functions, no database."""

import csv
import io

import pytest

from accounts_app.choices import CourseRole
from accounts_app.roster_csv import (
    RosterError,
    RosterRow,
    decode_roster,
    parse_roster,
    spreadsheet_safe,
    write_csv,
)


def errors_of(text: str) -> list[str]:
    return [str(error) for error in parse_roster(text).errors]


def emails_of(text: str) -> list[str]:
    return [row.email for row in parse_roster(text).rows]


# --- Encodings ------------------------------------------------------------------------------------


def test_utf8_without_bom_is_decoded_and_parsed():
    data = "email,name,role\nzoe@school.example,Zoë Ångström,student\n".encode()

    parsed = parse_roster(decode_roster(data))

    assert parsed.errors == []
    assert parsed.rows == [RosterRow(line=2, email="zoe@school.example", name="Zoë Ångström", role=CourseRole.STUDENT)]


def test_utf8_bom_is_removed_so_the_first_header_is_still_email():
    data = "\ufeffemail,name,role\nli@school.example,李雷,ta\n".encode()

    text = decode_roster(data)
    parsed = parse_roster(text)

    assert not text.startswith("\ufeff")
    assert parsed.errors == []
    assert parsed.rows == [RosterRow(line=2, email="li@school.example", name="李雷", role=CourseRole.TA)]


def test_parse_roster_also_strips_a_bom_left_in_the_text():
    parsed = parse_roster("\ufeffEmail;Name\nann@school.example;Ann\n")

    assert parsed.errors == []
    assert parsed.rows[0].email == "ann@school.example"


def test_latin1_bytes_are_refused_with_the_position_and_a_way_out():
    data = "email,name\nzoe@school.example,Zoë\n".encode("latin-1")
    bad_byte_position = data.index(b"\xeb") + 1

    with pytest.raises(ValueError, match="not UTF-8") as caught:
        decode_roster(data)

    assert str(caught.value) == (
        f"The file is not UTF-8 text (byte {bad_byte_position} is invalid). "
        "In your spreadsheet, save it as “CSV UTF-8”."
    )


def test_a_file_over_two_megabytes_is_refused_before_decoding():
    data = b"email\n" + b"x" * (2 * 1024 * 1024)

    with pytest.raises(ValueError, match="larger than 2 MB") as caught:
        decode_roster(data)

    assert str(caught.value) == "The file is larger than 2 MB. Split the roster into parts."


def test_a_file_of_exactly_two_megabytes_is_accepted():
    data = b"email\n" + b"a" * (2 * 1024 * 1024 - len(b"email\n"))

    assert len(decode_roster(data)) == 2 * 1024 * 1024


# --- Header and delimiters ------------------------------------------------------------------------


def test_semicolon_separated_file_is_read():
    parsed = parse_roster("email;name;role\nann@school.example;Lovelace, Ada;instructor\n")

    assert parsed.errors == []
    assert parsed.rows == [
        RosterRow(line=2, email="ann@school.example", name="Lovelace, Ada", role=CourseRole.INSTRUCTOR)
    ]


def test_header_names_ignore_case_surrounding_blanks_and_column_order():
    parsed = parse_roster("  ROLE , Name ,  E-Mail ,EMAIL \nTA,Bob,ignored,BOB@school.example\n")

    assert parsed.errors == []
    assert parsed.rows == [RosterRow(line=2, email="bob@school.example", name="Bob", role=CourseRole.TA)]


def test_only_the_email_column_is_required_and_role_defaults_to_student():
    parsed = parse_roster("email\nann@school.example\n")

    assert parsed.errors == []
    assert parsed.rows == [RosterRow(line=2, email="ann@school.example", name="", role=CourseRole.STUDENT)]


@pytest.mark.parametrize(
    ("written", "role"),
    [
        ("Instructor", CourseRole.INSTRUCTOR),
        ("teacher", CourseRole.INSTRUCTOR),
        ("TA", CourseRole.TA),
        ("Teaching Assistant", CourseRole.TA),
        (" student ", CourseRole.STUDENT),
        ("", CourseRole.STUDENT),
    ],
)
def test_role_spellings_are_understood(written, role):
    parsed = parse_roster(f"email,role\nann@school.example,{written}\n")

    assert parsed.errors == []
    assert parsed.rows[0].role == role


def test_missing_header_is_reported_on_its_line_with_what_was_found():
    parsed = parse_roster("ann@school.example,Ann,student\nbob@school.example,Bob,ta\n")

    assert parsed.rows == []
    assert [str(error) for error in parsed.errors] == [
        (
            "Line 1: The first line must be a header naming the columns email, name, role "
            "(found: ann@school.example, Ann, student)."
        )
    ]


def test_header_after_leading_blank_lines_reports_its_physical_line():
    assert errors_of("\n\nname,role\nAnn,student\n") == [
        ("Line 3: The first line must be a header naming the columns email, name, role (found: name, role).")
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "  \r\n\t\n"])
def test_empty_file_is_refused(text):
    parsed = parse_roster(text)

    assert parsed.rows == []
    assert parsed.errors == [RosterError(None, "The file is empty.")]
    assert str(parsed.errors[0]) == "The file is empty."


def test_header_only_file_is_refused():
    parsed = parse_roster("email,name,role\n\n,,\n")

    assert parsed.rows == []
    assert errors_of("email,name,role\n\n,,\n") == ["The file has a header but nobody in it."]


# --- Blank lines and line numbers -----------------------------------------------------------------


def test_blank_lines_are_ignored_and_line_numbers_stay_physical():
    text = (
        "email,name,role\n"  # 1
        "\n"  # 2
        "ann@school.example,Ann,student\n"  # 3
        "   \n"  # 4
        ",,\n"  # 5
        "bob@school.example,Bob,professor\n"  # 6
        "\n"  # 7
        "carl@school.example,Carl,ta\n"  # 8
    )

    parsed = parse_roster(text)

    assert [(row.line, row.email) for row in parsed.rows] == [
        (3, "ann@school.example"),
        (8, "carl@school.example"),
    ]
    assert [str(error) for error in parsed.errors] == [
        "Line 6: Unknown role “professor”. Use instructor, ta or student."
    ]


def test_windows_line_endings_with_blank_lines_keep_physical_line_numbers():
    text = "email,name,role\r\n\r\nann@school.example,Ann,student\r\n\r\nnot-an-email,Bob,ta\r\n"

    parsed = parse_roster(text)

    assert [(row.line, row.email, row.name) for row in parsed.rows] == [(3, "ann@school.example", "Ann")]
    assert [str(error) for error in parsed.errors] == ["Line 5: “not-an-email” is not a valid email address."]


# --- Row contents ---------------------------------------------------------------------------------


def test_emails_are_normalised_to_lower_case_without_blanks():
    assert emails_of("email,name\n  Ann.Lee@School.EXAMPLE  ,Ann\n\tBOB@school.example,Bob\n") == [
        "ann.lee@school.example",
        "bob@school.example",
    ]


def test_names_are_trimmed_but_unicode_is_kept_exactly():
    parsed = parse_roster(
        "email,name\nzoe@school.example,  Zoë Ångström \nli@school.example,李雷\njose@school.example,José Ñúñez-Çelik\n"
    )

    assert [row.name for row in parsed.rows] == ["Zoë Ångström", "李雷", "José Ñúñez-Çelik"]


def test_duplicate_email_names_both_lines_even_when_spelled_differently():
    text = (
        "email,name,role\n"
        "ann@school.example,Ann,student\n"
        "bob@school.example,Bob,student\n"
        " ANN@School.Example ,Ann again,ta\n"
    )

    parsed = parse_roster(text)

    assert [row.line for row in parsed.rows] == [2, 3]
    assert [str(error) for error in parsed.errors] == [
        "Line 4: ann@school.example is already on line 2. List each person once."
    ]


def test_unknown_role_blocks_with_its_line_number():
    parsed = parse_roster("email,role\nann@school.example,student\nbob@school.example,dean\n")

    assert parsed.ok is False
    assert [str(error) for error in parsed.errors] == ["Line 3: Unknown role “dean”. Use instructor, ta or student."]
    assert parsed.errors[0].line == 3


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("not-an-email", "“not-an-email” is not a valid email address."),
        ("ann@", "“ann@” is not a valid email address."),
        ("ann at school.example", "“ann at school.example” is not a valid email address."),
        ("", "The email is empty."),
    ],
)
def test_bad_email_blocks_with_its_line_number(cell, message):
    parsed = parse_roster(f"email,name\nok@school.example,Ok\n{cell},Someone\n")

    assert [row.email for row in parsed.rows] == ["ok@school.example"]
    assert [str(error) for error in parsed.errors] == [f"Line 3: {message}"]


def test_every_problem_on_one_line_is_reported():
    long_name = "x" * 201

    assert errors_of(f"email,name,role\nnope,{long_name},dean\n") == [
        "Line 2: “nope” is not a valid email address.",
        "Line 2: The name is longer than 200 characters.",
        "Line 2: Unknown role “dean”. Use instructor, ta or student.",
    ]


def test_a_name_of_exactly_200_characters_is_accepted():
    parsed = parse_roster(f"email,name\nann@school.example,{'y' * 200}\n")

    assert parsed.errors == []
    assert parsed.rows[0].name == "y" * 200


def test_short_rows_leave_missing_cells_empty():
    parsed = parse_roster("email,name,role\nann@school.example\n")

    assert parsed.errors == []
    assert parsed.rows == [RosterRow(line=2, email="ann@school.example", name="", role=CourseRole.STUDENT)]


def test_quoted_fields_keep_commas_quotes_and_newlines():
    text = (
        "email,name,role\n"  # 1
        'ann@school.example,"Lovelace, Ada ""Countess""",instructor\n'  # 2
        'bob@school.example,"Bob\nSecond Line",ta\n'  # 3-4
        "carl@school.example,Carl,dean\n"  # 5
    )

    parsed = parse_roster(text)

    assert [(row.email, row.name, row.role) for row in parsed.rows] == [
        ("ann@school.example", 'Lovelace, Ada "Countess"', CourseRole.INSTRUCTOR),
        ("bob@school.example", "Bob\nSecond Line", CourseRole.TA),
    ]
    # The line after a record that spans two lines is still reported by its physical number.
    assert [str(error) for error in parsed.errors] == ["Line 5: Unknown role “dean”. Use instructor, ta or student."]


@pytest.mark.parametrize("cell", ["=cmd()", "+1", "-2+3", "@SUM(A1)", '=HYPERLINK("x")'])
def test_formula_looking_names_are_kept_verbatim_when_parsed(cell):
    quoted = '"' + cell.replace('"', '""') + '"'

    parsed = parse_roster(f"email,name\nann@school.example,{quoted}\n")

    assert parsed.errors == []
    assert parsed.rows[0].name == cell


# --- Size limits ----------------------------------------------------------------------------------


def roster_text(people: int) -> str:
    return "email,name,role\n" + "".join(f"person{i}@school.example,Person {i},student\n" for i in range(people))


def test_row_limit_from_settings_is_enforced(settings):
    settings.PORTAL_ROSTER_MAX_ROWS = 3

    parsed = parse_roster(roster_text(4))

    assert parsed.errors == [RosterError(None, "The file has more than 3 people. Split the roster into parts.")]


def test_blank_lines_do_not_count_towards_the_row_limit(settings):
    settings.PORTAL_ROSTER_MAX_ROWS = 2

    parsed = parse_roster("email\n\nann@school.example\n\n\nbob@school.example\n\n")

    assert parsed.errors == []
    assert [row.line for row in parsed.rows] == [3, 6]


def test_exactly_5000_people_are_accepted():
    parsed = parse_roster(roster_text(5000))

    assert parsed.errors == []
    assert len(parsed.rows) == 5000
    assert parsed.rows[-1] == RosterRow(
        line=5001, email="person4999@school.example", name="Person 4999", role=CourseRole.STUDENT
    )


def test_5001_people_are_refused_as_a_whole():
    parsed = parse_roster(roster_text(5001))

    assert [str(error) for error in parsed.errors] == [
        "The file has more than 5,000 people. Split the roster into parts."
    ]
    assert parsed.errors[0].line is None


# --- Writing CSV for spreadsheets -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("=cmd()", "'=cmd()"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Ada Lovelace", "Ada Lovelace"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (True, "True"),
        (42, "42"),
    ],
)
def test_spreadsheet_safe_prefixes_only_formula_starts(value, safe):
    assert spreadsheet_safe(value) == safe


def test_write_csv_neutralises_formulas_in_rows_and_quotes_properly():
    written = write_csv(
        ["email", "name"],
        [["ann@school.example", '=HYPERLINK("x")'], ["bob@school.example", "Bob, Jr."]],
    )

    assert list(csv.reader(io.StringIO(written))) == [
        ["email", "name"],
        ["ann@school.example", '\'=HYPERLINK("x")'],
        ["bob@school.example", "Bob, Jr."],
    ]
    assert written.splitlines()[1] == 'ann@school.example,"\'=HYPERLINK(""x"")"'
