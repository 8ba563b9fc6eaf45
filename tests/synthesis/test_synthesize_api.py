"""POST /synthesize and /v1/audio/speech against a real Piper worker over loopback gRPC."""

from __future__ import annotations

import httpx
import pytest

from tests.audio_checks import parse_pcm, parse_wav, transcribe, wav_header_rate, word_error_rate

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."


async def synthesize(api: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await api.post("/synthesize", json=body)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 48000])
async def test_wav_has_requested_rate_and_plausible_duration(
    api: httpx.AsyncClient, rate: int
) -> None:
    """The WAV header, the X-Sample-Rate header and the audio length agree with the request."""
    response = await synthesize(api, text=SENTENCE, sample_rate=rate)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["x-sample-rate"] == str(rate)
    assert wav_header_rate(response.content) == rate
    pcm = parse_wav(response.content)
    assert pcm.sample_rate == rate
    words = len(SENTENCE.split())
    # Spoken English runs 2-4 words per second; Piper's medium voices sit near 3.
    assert words / 5.0 < pcm.seconds < words / 1.5
    assert int(abs(pcm.samples).max()) > 3000, "audio is (nearly) silent"


async def test_default_rate_is_the_voice_native_rate(api: httpx.AsyncClient) -> None:
    """Without sample_rate the audio comes at the voice's own rate: no resampling at all."""
    voices = (await api.get("/v1/voices")).json()
    native = voices["voices"][0]["native_sample_rate"]
    response = await synthesize(api, text="Hello there.")
    assert response.status_code == 200
    assert parse_wav(response.content).sample_rate == native


async def test_pcm_matches_wav(api: httpx.AsyncClient) -> None:
    """Raw PCM is the same audio as the WAV body: same rate, same length within Piper's noise,
    and Whisper hears the same words in both."""
    wav = await synthesize(api, text=SENTENCE, sample_rate=24000, format="wav")
    pcm = await synthesize(api, text=SENTENCE, sample_rate=24000, format="pcm")
    assert pcm.status_code == 200
    assert pcm.headers["content-type"] == "audio/pcm"
    assert pcm.headers["x-audio-format"] == "pcm_s16le"
    assert pcm.headers["x-sample-rate"] == "24000"
    wav_audio = parse_wav(wav.content)
    pcm_audio = parse_pcm(pcm.content, 24000)
    # Piper samples phoneme durations with noise, so lengths differ slightly run to run.
    assert pcm_audio.seconds == pytest.approx(wav_audio.seconds, rel=0.15)
    assert word_error_rate(SENTENCE, transcribe(pcm_audio)) <= 0.2
    assert word_error_rate(SENTENCE, transcribe(wav_audio)) <= 0.2


@pytest.mark.slow
async def test_whisper_hears_the_words(api: httpx.AsyncClient) -> None:
    """Speech that says what was asked: word error rate <= 0.2 over three sentences."""
    sentences = [
        "Please remember to water the plants before you leave for work.",
        "The train to the city departs from platform four every hour.",
        "She bought fresh bread, cheese and apples at the market this morning.",
    ]
    for sentence in sentences:
        response = await synthesize(api, text=sentence, sample_rate=16000)
        assert response.status_code == 200
        heard = transcribe(parse_wav(response.content))
        assert word_error_rate(sentence, heard) <= 0.2, heard


async def test_openai_speech_endpoint(api: httpx.AsyncClient) -> None:
    """The OpenAI-compatible route speaks the input at 24 kHz, as OpenAI's pcm does."""
    voice = (await api.get("/v1/voices")).json()["default_voice"]
    for fmt in ("wav", "pcm"):
        response = await api.post(
            "/v1/audio/speech",
            json={
                "model": "tts-1",
                "input": "Good morning to you.",
                "voice": voice,
                "response_format": fmt,
            },
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-sample-rate"] == "24000"
        audio = parse_wav(response.content) if fmt == "wav" else parse_pcm(response.content, 24000)
        assert 0.5 < audio.seconds < 4.0


async def test_voices_lists_the_packaged_default(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v1/voices")).json()
    assert body["default_voice"] == "en_US-joe-medium"
    joe = next(v for v in body["voices"] if v["name"] == "en_US-joe-medium")
    assert joe == {
        "name": "en_US-joe-medium",
        "native_sample_rate": 22050,
        "language": "en_US",
        "engines": ["piper"],
        "workers": 1,
    }


async def test_openai_voice_and_model_listings(api: httpx.AsyncClient) -> None:
    """GET /v1/audio/voices in the shape Open WebUI reads ({"voices": [{"id", "name"}]}),
    with OpenAI's names as aliases of the voice they speak; /v1/models in OpenAI's list
    shape; /v1/audio/models as Open WebUI reads it."""
    voices = (await api.get("/v1/audio/voices")).json()["voices"]
    by_id = {v["id"]: v for v in voices}
    assert by_id["en_US-joe-medium"]["name"] == "en_US-joe-medium"
    assert by_id["en_US-joe-medium"]["alias_of"] is None
    assert by_id["alloy"]["alias_of"] == "en_US-joe-medium"
    assert {"alloy", "echo", "nova", "shimmer", "verse"} <= set(by_id)
    models = (await api.get("/v1/models")).json()
    assert models["object"] == "list"
    ids = [m["id"] for m in models["data"]]
    assert ids == ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", "piper"]
    assert all(m["object"] == "model" and m["created"] > 0 for m in models["data"])
    audio_models = (await api.get("/v1/audio/models")).json()
    assert [m["id"] for m in audio_models["models"]] == ids


@pytest.mark.parametrize(
    ("model", "voice"),
    [("piper", "alloy"), ("en_US-joe-medium", "nova"), ("tts-1-hd", None), ("piper", None)],
)
async def test_model_names_an_engine_or_a_voice(
    api: httpx.AsyncClient, model: str, voice: str | None
) -> None:
    """`model` may be OpenAI's, an engine of the fleet or a voice; each speaks."""
    body: dict[str, object] = {"model": model, "input": "Good morning.", "response_format": "pcm"}
    if voice is not None:
        body["voice"] = voice
    response = await api.post("/v1/audio/speech", json=body)
    assert response.status_code == 200, response.text
    assert parse_pcm(response.content, 24000).seconds > 0.4
