"""The app's pages and the UI pieces they share; model, image and storage logic live in digit_classifier."""
