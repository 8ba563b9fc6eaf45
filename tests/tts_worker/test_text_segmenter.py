"""The segmenter cuts at sentences and long clauses, incrementally, with exact offsets."""

from __future__ import annotations

from tts_worker.text_segmenter import Segment, TextSegmenter, split_segment

TEXT = (
    "Hello there. Dr. Smith walked all the way to the market, and he bought apples, "
    "pears and plums; then he left! Why? Pi is 3.14 and that is all"
)


def segment(text: str, step: int, **kwargs: int) -> list[str]:
    segmenter = TextSegmenter(**kwargs)
    pieces = []
    for i in range(0, len(text), step):
        pieces += segmenter.push(text[i : i + step])
    pieces += segmenter.flush()
    for piece in pieces:
        assert text[piece.start : piece.end] == piece.text
    return [p.text for p in pieces]


def test_same_segments_whatever_the_chunking() -> None:
    """Token-by-token input gives the same segments as the whole text at once."""
    expected = [
        "Hello there.",
        "Dr. Smith walked all the way to the market,",
        "and he bought apples, pears and plums;",
        "then he left!",
        "Why?",
        "Pi is 3.14 and that is all",
    ]
    for step in (1, 3, 7, len(TEXT)):
        assert segment(TEXT, step) == expected


def test_short_clauses_are_not_split() -> None:
    assert segment("Yes, I agree, let us go.", 4) == ["Yes, I agree, let us go."]


def test_long_text_without_punctuation_splits_at_a_space() -> None:
    words = " ".join(["word"] * 100)
    pieces = segment(words, 5, max_segment_chars=60)
    assert all(len(p) <= 60 + len(" word") for p in pieces)  # the first space past the limit
    assert " ".join(pieces) == words


def test_a_segment_is_only_emitted_once_confirmed() -> None:
    """A period at the end of the buffer may be '3.' of '3.5': wait for the next character."""
    segmenter = TextSegmenter()
    assert segmenter.push("It costs 3.") == []
    assert [s.text for s in segmenter.push("5 dollars. Next")] == ["It costs 3.5 dollars."]
    assert [s.text for s in segmenter.flush()] == ["Next"]


def test_punctuation_only_makes_no_segment() -> None:
    assert segment(" ... !? ", 2) == []


# -- CJK: full-width punctuation, no spaces ------------------------------------------------

WEATHER = "根据最新的天气预报，明天上午会有小雨，下午转晴，气温在十五到二十度之间。你想出去走走吗？"


def test_chinese_starts_after_its_first_clause_whatever_the_chunking() -> None:
    """A long Chinese sentence is cut at its first long-enough clause (，) with no space after
    it, so speech starts before the sentence is complete; short clauses stay joined."""
    expected = [
        "根据最新的天气预报，",
        "明天上午会有小雨，",
        "下午转晴，气温在十五到二十度之间。",
        "你想出去走走吗？",
    ]
    for step in (1, 2, 5, len(WEATHER)):
        assert segment(WEATHER, step) == expected


def test_chinese_sentence_marks_need_no_space() -> None:
    assert segment("你好。今天天气很好！你想去公园吗？", 3) == [
        "你好。",
        "今天天气很好！",
        "你想去公园吗？",
    ]


def test_short_chinese_clauses_are_not_split() -> None:
    assert segment("好的，我明白了，谢谢。", 2) == ["好的，我明白了，谢谢。"]


def test_enumeration_comma_and_semicolon_are_clause_ends() -> None:
    text = "我们需要准备新鲜的苹果和香蕉、橙子和葡萄；还有很多其他的东西要买。"
    assert segment(text, 4) == [
        "我们需要准备新鲜的苹果和香蕉、",
        "橙子和葡萄；还有很多其他的东西要买。",
    ]


def test_a_closing_quote_stays_with_its_sentence() -> None:
    """。 inside quotes ends the sentence after the closing mark, not before it."""
    assert segment("他说：“我们现在就走吧。”然后他离开了。", 1) == [
        "他说：“我们现在就走吧。”",
        "然后他离开了。",
    ]


def test_a_cjk_mark_at_the_end_of_the_buffer_waits_for_what_follows() -> None:
    """A closing quote may still come: the sentence is emitted once the next character says
    it will not, or at the end of input."""
    segmenter = TextSegmenter()
    assert segmenter.push("你好。") == []
    assert [s.text for s in segmenter.push("我")] == ["你好。"]
    assert [s.text for s in segmenter.flush()] == ["我"]


def test_japanese_kana_and_kanji() -> None:
    assert segment("こんにちは。お元気ですか？今日はいい天気ですね。", 2) == [
        "こんにちは。",
        "お元気ですか？",
        "今日はいい天気ですね。",
    ]


def test_latin_sentence_end_before_cjk_text_needs_no_space() -> None:
    assert segment("Hello world.你好世界。", 3) == ["Hello world.", "你好世界。"]


def test_cjk_text_without_any_punctuation_splits_between_characters() -> None:
    """No spaces, no marks: cut between two characters once the spoken length passes the
    limit, and lose nothing."""
    text = "我" * 200
    pieces = segment(text, 7, max_segment_chars=60)
    assert len(pieces) > 1
    assert all(len(p) <= 60 // 4 + 1 for p in pieces)
    assert "".join(pieces) == text


def first_segments(text: str, step: int, words: int = 3) -> list[str]:
    return segment(text, step, first_segment_words=words)


def test_the_first_segment_ends_at_the_first_natural_break_after_a_few_words() -> None:
    """A clause mark after three words, or the space before a word that opens a phrase;
    later segments follow the usual clause rule (30 characters)."""
    for step in (1, 4, 200):
        assert first_segments("If your parcel is late, just call us back, and we will.", step) == [
            "If your parcel is late,",
            "just call us back, and we will.",
        ]
        assert first_segments("Your order has shipped and should arrive by Thursday.", step)[0] == (
            "Your order has shipped"
        )
    # Too few words before the comma: the break comes later.
    assert first_segments("Yes, I agree, let us go.", 200) == ["Yes, I agree,", "let us go."]
    assert first_segments("Well, this is it.", 200) == ["Well, this is it."]


def test_a_sentence_ending_within_a_few_words_of_the_break_stays_whole() -> None:
    assert first_segments("Sure, I can help with that.", 200) == ["Sure, I can help with that."]
    # Streamed word by word, the end is not known yet at the break: it is taken.
    assert first_segments("Sure, I can help you if you wait.", 1) == [
        "Sure, I can help you",
        "if you wait.",
    ]


def test_only_the_first_segment_is_short() -> None:
    text = "Hello there my friend. I have pulled up your account and I can see it."
    assert first_segments(text, 200) == [
        "Hello there my friend.",
        "I have pulled up your account and I can see it.",
    ]


def test_cjk_first_segment_ends_at_a_clause_mark_after_a_few_characters() -> None:
    text = "你好，今天天气很好，我们去公园散步吧。"
    assert first_segments(text, 200) == ["你好，今天天气很好，", "我们去公园散步吧。"]


def test_split_segment_prefers_clause_marks_then_phrase_openers_then_spaces() -> None:
    whole = Segment(
        "I have pulled up your account and I can see the payment from last week.", 7, 79
    )
    head, tail = split_segment(whole, 40, min_words=3)
    assert (head.text, tail and tail.text) == (
        "I have pulled up your account",
        "and I can see the payment from last week.",
    )
    assert (head.start, head.end) == (7, 7 + len(head.text))
    assert tail is not None and (tail.start, tail.end) == (7 + len(head.text) + 1, 79)
    commas = Segment("It went through on Monday, but the email bounced back to us today.", 0, 66)
    head, tail = split_segment(commas, 60, min_words=3)
    assert head.text == "It went through on Monday,"
    plain = Segment("one two three four five six seven eight nine ten", 0, 48)
    head, tail = split_segment(plain, 20, min_words=3)
    assert (head.text, tail and tail.text) == (
        "one two three four",
        "five six seven eight nine ten",
    )
    assert split_segment(plain, 100, min_words=3) == (plain, None)
    assert split_segment(Segment("one two three four", 0, 18), 10, min_words=3)[1] is None
