from tts_worker.cli import main

main()
