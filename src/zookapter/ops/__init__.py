"""Operations: four-letter words, AdminServer, metrics, shell."""
